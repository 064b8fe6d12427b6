@request_validation @dgx
Feature: Every enum and range of the chat request schema
  The gateway validates the whole OpenAI chat request schema before anything goes upstream
  (SPEC §3 catalog: invalid_field with a JSON pointer in "param", missing_field for an absent
  required field). The enums and ranges are those of the OpenAI Chat Completions reference
  that the OpenAI SDK sends: tool_choice is "none", "auto", "required" or an object; a message
  role is system, developer, user, assistant or tool; n is 1..128, top_logprobs 0..20,
  temperature 0..2, top_p 0..1, the penalties -2..2, max_tokens and max_completion_tokens at
  least 1; stop is a string or up to 4 strings; response_format is an object with a string "type"; a tool message needs
  tool_call_id, an assistant message needs content unless it carries tool_calls, and each tool
  call needs an id and a function. A client relies on each bound: a value inside is accepted,
  a value outside is refused with the pointer to it.

  Background:
    Given I authenticate with the "primary" token

  Scenario Outline: A value outside an enum or range is invalid_field at its pointer
    When I send a chat request with "<pointer>" set to '<value>'
    Then the response is the error "invalid_field"
    And the error param is "<param>"

    Examples: enums
      | pointer          | value                                | param            |
      | /tool_choice     | "sometimes"                          | /tool_choice     |
      | /tool_choice     | 42                                   | /tool_choice     |
      | /tool_choice     | true                                 | /tool_choice     |
      | /response_format | "json"                               | /response_format |
      | /response_format | {"type": 1}                          | /response_format |
      | /messages/1      | {"role": "robot", "content": "hi"}   | /messages/1/role |
      | /messages/1      | {"role": "", "content": "hi"}        | /messages/1/role |

    Examples: integer ranges
      | pointer       | value | param         |
      | /n            | 0     | /n            |
      | /n            | 129   | /n            |
      | /n            | 1.5   | /n            |
      | /n            | "2"   | /n            |
      | /top_logprobs | -1    | /top_logprobs |
      | /top_logprobs | 21    | /top_logprobs |
      | /seed         | 1.5   | /seed         |

    # OpenAI's reference for `stop`: "string / array / null: up to 4 sequences where the API
    # will stop generating further tokens".
    Examples: stop sequences
      | pointer | value                     | param |
      | /stop   | ["a", "b", "c", "d", "e"] | /stop |
      | /stop   | [1]                       | /stop |
      | /stop   | ["a", 2]                  | /stop |
      | /stop   | 5                         | /stop |

    Examples: number ranges
      | pointer            | value | param              |
      | /top_p             | 1.01  | /top_p             |
      | /temperature       | 2.01  | /temperature       |
      | /presence_penalty  | -2.01 | /presence_penalty  |
      | /frequency_penalty | 2.01  | /frequency_penalty |

  # An integer too large for 64-bit signed arithmetic is still an integer, only out of range:
  # the caller is told the range it must fall in, as for any other value outside it, not that
  # it sent something that is not an integer.
  Scenario Outline: An integer beyond 64 bits is out of range, and the message names the range (<pointer>)
    When I send a chat request with "<pointer>" set to '<value>'
    Then the response is the error "invalid_field"
    And the error param is "<pointer>"
    And the error message contains "<range>"

    Examples:
      | pointer       | value                | range            |
      | /n            | 18446744073709551615 | between 1 and 128 |
      | /top_logprobs | 9223372036854775808  | between 0 and 20 |

  Scenario Outline: A value inside an enum or range is accepted
    When I send a chat request with "<pointer>" set to '<value>'
    Then the response status is 200
    And the body matches the schema "chat_completion.json"

    Examples:
      | pointer                | value                                     |
      | /tool_choice           | "none"                                    |
      | /tool_choice           | "auto"                                    |
      | /response_format       | {"type": "text"}                          |
      | /messages/1            | {"role": "assistant", "content": "hello"} |
      | /messages/1            | {"role": "user", "content": "again"}      |
      | /n                     | 1                                         |
      | /top_logprobs          | 0                                         |
      | /top_logprobs          | 20                                        |
      | /seed                  | -7                                        |
      | /top_p                 | 0                                         |
      | /frequency_penalty     | -2                                        |
      | /frequency_penalty     | 2                                         |
      | /temperature           | 1.5                                       |
      | /max_completion_tokens | 64                                        |
      | /stop                  | "END"                                     |
      | /stop                  | ["a", "b", "c", "d"]                      |

  Scenario Outline: An absent field a message shape requires is missing_field at its pointer
    When I send a chat request with "/messages/1" set to '<message>'
    Then the response is the error "missing_field"
    And the error param is "<param>"

    Examples:
      | message                                                                                  | param                                |
      | {"role": "tool", "content": "42"}                                                        | /messages/1/tool_call_id             |
      | {"role": "assistant"}                                                                    | /messages/1/content                  |
      | {"content": "who am I"}                                                                  | /messages/1/role                     |
      | {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}    | /messages/1/tool_calls/0/id          |
      | {"role": "assistant", "tool_calls": [{"id": "c1"}]}                                      | /messages/1/tool_calls/0/function    |
      | {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"arguments": "{}"}}]}     | /messages/1/tool_calls/0/function/name |
      | {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}           | /messages/1/tool_calls/0/function/arguments |

  Scenario Outline: A /c1 user_id that is empty, too long or has control characters is invalid_field
    Given the request field "/user_id" is '<user_id>'
    When I send a chat request to "/c1/chat/completions"
    Then the response is the error "invalid_field"
    And the error param is "/user_id"

    Examples:
      | user_id                                                                                                                                      |
      | ""                                                                                                                                           |
      | "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"            |

  Scenario: A /c1 user_id with a control character is invalid_field
    Given the request field "/user_id" is '"bob\u0007"'
    When I send a chat request to "/c1/chat/completions"
    Then the response is the error "invalid_field"
    And the error param is "/user_id"

  Scenario: A /c1 user_id of 128 printable characters is accepted
    Given the request field "/user_id" is '"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"'
    When I send a chat request to "/c1/chat/completions"
    Then the response status is 200
