@tool_arguments @dgx
Feature: Tool-call arguments in the request history
  OpenAI encodes messages[i].tool_calls[j].function.arguments as a JSON string. The gateway parses
  every such string before forwarding; one that is not parseable JSON is tool_call_arguments_invalid
  (400) with "param" pointing at the string, instead of an opaque upstream validation error
  (SPEC §3 catalog, seed 000 "tool_call_arguments_invalid"). An arguments value that is not a string
  at all is a type error (invalid_field), and a tool call without a function name is missing_field;
  type and presence checks come before content checks (SPEC §3 check order).

  In these scenarios the request history is: message 0 the user's question, message 1 an
  assistant message carrying the tool calls, then one tool result message per tool call.

  Background:
    Given I authenticate with the "primary" token

  Scenario Outline: Unparseable arguments are tool_call_arguments_invalid (<case>)
    Given the conversation contains an assistant tool call "lookup_weather" with arguments '<arguments>'
    When I send a chat request
    Then the response is the error "tool_call_arguments_invalid"
    And the error param is "/messages/1/tool_calls/0/function/arguments"

    Examples:
      | case                          | arguments                      |
      | unterminated object           | {"city": "Berlin"              |
      | unquoted key                  | {city: "Berlin"}               |
      | plain text                    | Berlin please                  |
      | empty string                  |                                |
      | trailing brace                | {"city": "Berlin"}}            |
      | two objects glued together    | {}{"city": "Berlin"}           |
      | trailing comma                | {"city": "Berlin",}            |
      | NaN literal                   | {"temperature": NaN}           |

  Scenario: Single-quoted pseudo-JSON arguments are tool_call_arguments_invalid
    Given the conversation contains an assistant tool call "lookup_weather" with arguments "{'city': 'Berlin'}"
    When I send a chat request
    Then the response is the error "tool_call_arguments_invalid"
    And the error param is "/messages/1/tool_calls/0/function/arguments"

  Scenario Outline: Parseable arguments are accepted
    Given the conversation contains an assistant tool call "lookup_weather" with arguments '<arguments>'
    When I send a chat request
    Then the response status is 200

    Examples:
      | arguments                                                  |
      | {}                                                         |
      | {"city": "Berlin"}                                         |
      | {"city": "Düsseldorf", "unit": "celsius"}                  |
      | {"filters": {"days": [1, 2, 3], "hourly": true}, "n": null} |

  Scenario: The param points at the offending tool call, not the first one
    Given the conversation contains an assistant tool call "lookup_weather" with arguments '{"city": "Berlin"}'
    And the conversation contains an assistant tool call "lookup_weather" with arguments '{"city": '
    When I send a chat request
    Then the response is the error "tool_call_arguments_invalid"
    And the error param is "/messages/1/tool_calls/1/function/arguments"

  Scenario: Arguments that are an object instead of a string are invalid_field
    Given the conversation contains an assistant tool call "lookup_weather" with arguments '{"city": "Berlin"}'
    When I send a chat request with "/messages/1/tool_calls/0/function/arguments" set to '{"city": "Berlin"}'
    Then the response is the error "invalid_field"
    And the error param is "/messages/1/tool_calls/0/function/arguments"

  Scenario: A tool call without a function name is missing_field
    Given the conversation contains an assistant tool call "lookup_weather" with arguments '{"city": "Berlin"}'
    When I send a chat request without "/messages/1/tool_calls/0/function/name"
    Then the response is the error "missing_field"
    And the error param is "/messages/1/tool_calls/0/function/name"

  @needs-mock
  Scenario: Unparseable arguments never reach the upstream
    Given the conversation contains an assistant tool call "lookup_weather" with arguments '{"city": '
    When I send a chat request
    Then the response is the error "tool_call_arguments_invalid"
    And the upstream received 0 requests
