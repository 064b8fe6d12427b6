@request_validation @dgx
Feature: Request validation and check order
  A chat request is validated before anything is sent upstream (SPEC §3 catalog): a body over
  MAX_BODY_BYTES is body_too_large (413, enforced while reading); a body that is not JSON or not a
  JSON object is invalid_json; an absent required field is missing_field and a value of the wrong
  type, range or enum is invalid_field, both with a JSON pointer in "param"; a model that is not a
  configured alias, or not allowed for this tenant, is model_not_in_allowlist (param "/model").
  One request has one answer: the checks run in the fixed order route → auth → rate limit → body
  size → JSON → required fields → field types/ranges → model allowlist → content checks (images,
  tool arguments) → max_tokens floor → quota → upstream (SPEC §3 check order).

  Background:
    Given I authenticate with the "primary" token

  Rule: A body that is not a JSON object is invalid_json

    Scenario Outline: Bodies that are not a JSON object
      When I send the raw body '<body>'
      Then the response is the error "invalid_json"

      Examples:
        | body                                       |
        | not json at all                            |
        |                                            |
        | {"model": "x", "messages": [              |
        | {"model": "x",}                            |
        | {"model": "x"} trailing garbage            |
        | []                                         |
        | [{"model": "x"}]                           |
        | "just a string"                            |
        | 42                                         |
        | null                                       |
        | true                                       |

    Scenario: A body that is not JSON is invalid_json whatever its content type says
      Given the header "Content-Type" is "text/plain"
      When I send the raw body 'definitely not json'
      Then the response is the error "invalid_json"

  Rule: Required fields are reported with a pointer to the absent field

    Scenario Outline: An absent required field is missing_field
      When I send a chat request without "<pointer>"
      Then the response is the error "missing_field"
      And the error param is "<pointer>"

      Examples:
        | pointer            |
        | /model             |
        | /messages          |
        | /messages/0/role   |
        | /messages/0/content |

  Rule: Wrong types, ranges and enums are reported with a pointer to the bad value

    Scenario Outline: A value of the wrong type, range or enum is invalid_field
      When I send a chat request with "<pointer>" set to '<value>'
      Then the response is the error "invalid_field"
      And the error param is "<param>"

      Examples: wrong type
        | pointer             | value                 | param               |
        | /model              | 42                    | /model              |
        | /messages           | "hello"               | /messages           |
        | /messages           | {"role": "user"}      | /messages           |
        | /messages/0         | "hello"               | /messages/0         |
        | /messages/0/role    | 7                     | /messages/0/role    |
        | /messages/0/content | 42                    | /messages/0/content |
        | /messages/0/content | {"text": "hi"}        | /messages/0/content |
        | /temperature        | "hot"                 | /temperature        |
        | /top_p              | "high"                | /top_p              |
        | /max_tokens         | "100"                 | /max_tokens         |
        | /max_tokens         | 1.5                   | /max_tokens         |
        | /stream             | "yes"                 | /stream             |
        | /tools              | "lookup_weather"      | /tools              |

      Examples: out of range
        | pointer                | value | param                  |
        | /messages              | []    | /messages              |
        | /temperature           | 2.5   | /temperature           |
        | /temperature           | -0.1  | /temperature           |
        | /top_p                 | 1.5   | /top_p                 |
        | /top_p                 | -1    | /top_p                 |
        | /max_tokens            | 0     | /max_tokens            |
        | /max_tokens            | -1    | /max_tokens            |
        | /max_completion_tokens | 0     | /max_completion_tokens |
        | /presence_penalty      | 2.5   | /presence_penalty      |
        | /frequency_penalty     | -2.5  | /frequency_penalty     |

      Examples: not in the enum
        | pointer          | value                               | param            |
        | /messages/0/role | "wizard"                            | /messages/0/role |
        | /messages/1      | {"role": "wizard", "content": "hi"} | /messages/1/role |

    Scenario Outline: Values at the edges of each range are accepted
      When I send a chat request with "<pointer>" set to '<value>'
      Then the response status is 200
      And the body matches the schema "chat_completion.json"

      Examples:
        | pointer           | value |
        | /temperature      | 0     |
        | /temperature      | 2     |
        | /top_p            | 1     |
        | /presence_penalty | -2    |
        | /presence_penalty | 2     |
        | /max_tokens       | 1     |
        | /stream           | false |

  Rule: Only configured aliases the tenant may use are accepted

    Scenario Outline: A model that is not a configured alias is model_not_in_allowlist
      When I send a chat request with "/model" set to '"<model>"'
      Then the response is the error "model_not_in_allowlist"
      And the error param is "/model"

      Examples:
        | model                  |
        | no-such-model          |
        | ../default             |
        | gpt-0-does-not-exist   |

    @needs-config
    Scenario: A configured alias the tenant may not use is model_not_in_allowlist
      Given I use the "forbidden" model
      When I send a chat request
      Then the response is the error "model_not_in_allowlist"
      And the error param is "/model"

  Rule: Bodies over MAX_BODY_BYTES are rejected while they are read

    @needs-config
    Scenario: A body over MAX_BODY_BYTES is body_too_large
      When I send a chat request padded to 2097152 bytes
      Then the response is the error "body_too_large"

    @needs-config
    Scenario: A body over MAX_BODY_BYTES without a Content-Length is rejected while reading
      Given the request body is sent with chunked encoding
      When I send a chat request padded to 2097152 bytes
      Then the response is the error "body_too_large"

    @needs-config
    Scenario: A body just under MAX_BODY_BYTES is accepted
      When I send a chat request padded to 1000000 bytes
      Then the response status is 200

    # "Over" MAX_BODY_BYTES is refused (SPEC §3 body_too_large), so a body of exactly
    # MAX_BODY_BYTES (1048576 in the embedded configuration, /v1/info max_body_bytes) is not,
    # however it is framed.
    @needs-config
    Scenario: A body of exactly MAX_BODY_BYTES is accepted
      When I send a chat request padded to 1048576 bytes
      Then the response status is 200

    @needs-config
    Scenario: A body of exactly MAX_BODY_BYTES without a Content-Length is accepted
      Given the request body is sent with chunked encoding
      When I send a chat request padded to 1048576 bytes
      Then the response status is 200

    # How a body is cut into chunks is the client's (or a proxy's) business: a body under
    # MAX_BODY_BYTES that arrives in hundreds of small chunks is the same body (SPEC §3 names
    # one bound, MAX_BODY_BYTES, for the bytes of a body).
    @needs-config
    Scenario: A body under MAX_BODY_BYTES that arrives in many small chunks is accepted
      Given the request body is sent with chunked encoding in pieces of 2048 bytes
      When I send a chat request padded to 1000000 bytes
      Then the response status is 200

  Rule: One request, one answer: the first failing check in SPEC order wins

    Scenario: Unauthenticated and malformed gives missing_authorization
      Given no Authorization header
      When I send the raw body '{"model": "x", "messages": ['
      Then the response is the error "missing_authorization"

    Scenario: A wrong bearer and an unknown model gives invalid_authorization
      Given the header "Authorization" is "Bearer not-a-real-token-4242"
      When I send a chat request with "/model" set to '"no-such-model"'
      Then the response is the error "invalid_authorization"

    @needs-config
    Scenario: Unauthenticated and too large gives missing_authorization
      Given no Authorization header
      When I send a chat request padded to 2097152 bytes
      Then the response is the error "missing_authorization"

    Scenario: A missing field and an invalid field gives missing_field
      Given the request field "/temperature" is '"hot"'
      When I send a chat request without "/model"
      Then the response is the error "missing_field"
      And the error param is "/model"

    Scenario: An invalid field and an unknown model gives invalid_field
      Given the request field "/model" is '"no-such-model"'
      When I send a chat request with "/temperature" set to '"hot"'
      Then the response is the error "invalid_field"
      And the error param is "/temperature"

    Scenario: An unknown model and a malformed image gives model_not_in_allowlist
      Given the user message carries the image URL "data:image/png;base64,abc=d"
      When I send a chat request with "/model" set to '"no-such-model"'
      Then the response is the error "model_not_in_allowlist"

    Scenario: An unknown model and unparseable tool arguments gives model_not_in_allowlist
      Given the conversation contains an assistant tool call "lookup_weather" with arguments '{"city": '
      When I send a chat request with "/model" set to '"no-such-model"'
      Then the response is the error "model_not_in_allowlist"

    @needs-mock
    Scenario: A content error is reported before the max_tokens floor and never reaches the upstream
      Given the user message carries the image URL "data:image/png;base64,!!!!"
      When I send a chat request with "/max_tokens" set to "1"
      Then the response is the error "image_base64_invalid"
      And the header "spass-applied" is absent
      And the upstream received 0 requests

  Rule: A repeated member never reaches the upstream twice

    # vLLM takes sampling parameters beyond OpenAI's in the same body (vLLM docs, OpenAI
    # Compatible Server, "Extra Parameters": top_k, min_p, repetition_penalty, …; the OpenAI
    # SDK sends them through extra_body, merged at the top level). A gateway checks what it
    # knows and carries the rest unexpanded (SPEC §5): the upstream reads it under its name.
    # @byte_relay: on both relay paths (the caller's bytes, and the tree serialised).
    @needs-mock @byte_relay
    Scenario: A sampling parameter the gateway does not know reaches the upstream as sent
      Given the request field "/top_k" is '40'
      When I send a chat request
      Then the response status is 200
      And the upstream request had "top_k" = 40

    # JSON leaves a repeated member name open (RFC 8259 §4: "the names within an object
    # SHOULD be unique", and parsers differ on which copy wins). A gateway that checks one
    # copy and forwards both lets the upstream act on the one it never checked (here an
    # out-of-range temperature behind a valid one). Refusing the body is as good as
    # forwarding one checked copy; a server error is not.
    # @byte_relay: also run against the gateway without server-side tools, which forwards
    # the caller's own bytes when nothing in them must change.
    @needs-mock @byte_relay
    Scenario: A member written twice is refused or reaches the upstream once
      Given the request field "/temperature" is '0.5'
      When I send a chat request with the member "temperature" written twice, first as '7'
      Then no member reached the upstream twice
