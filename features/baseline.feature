@baseline
Feature: Baseline — what every OpenAI-compatible gateway must do, whatever its catalog
  The baseline layer (SPEC §8 "Profiles and target files"). Each scenario names a condition it
  creates ("no-credentials", "upstream-5xx", …) and the profile says what the answer must be:
  `openai` asks only what any OpenAI client relies on (401/403 for credentials, 4xx for client
  errors, an OpenAI error object, 5xx for an upstream 5xx, an in-band stream failure); `dgx`
  asks for its exact catalog codes; a profile that claims no answer for a condition makes the
  scenario "not applicable". The safety scenarios (no 5xx for a client error, no upstream host,
  URL or key in any body or header, the caller's credential never echoed) name no condition:
  they hold for every gateway and run whatever the code check of their twin scenario says.

  Background:
    Given I authenticate with the "primary" token

  Rule: Credentials are refused with 401/403 and an error body

    Scenario: A chat request without credentials is refused
      Given no Authorization header
      When I send a chat request
      Then the response answers the condition "no-credentials"

    Scenario: A chat request with unknown credentials is refused
      Given the credentials are "cf-not-a-real-key-4242"
      When I send a chat request
      Then the response answers the condition "unknown-credentials"

    Scenario: Safety: a chat request without credentials never gets a server error
      Given no Authorization header
      When I send a chat request
      Then the response is not a server error

    Scenario: Safety: unknown credentials never get a server error
      Given the credentials are "cf-not-a-real-key-4242"
      When I send a chat request
      Then the response is not a server error

    Scenario: Safety: the presented credential is never echoed, in the body or the headers
      Given the credentials are "sk-conformance-secret-7f3a9b"
      When I send a chat request
      Then the response does not echo the credential "sk-conformance-secret-7f3a9b"

  Rule: A client error is a 4xx with an error object, never a 5xx

    Scenario: A body that is not JSON is a client error
      When I send the raw body "{not json"
      Then the response answers the condition "invalid-json"

    Scenario: Safety: a body that is not JSON never gets a server error
      When I send the raw body "{not json"
      Then the response is not a server error

    Scenario: A field of the wrong type is a client error
      When I send a chat request with "/temperature" set to '"hot"'
      Then the response answers the condition "wrong-field-type"

    Scenario: Safety: a field of the wrong type never gets a server error
      When I send a chat request with "/temperature" set to '"hot"'
      Then the response is not a server error

    Scenario: An unknown model is a client error
      When I send a chat request with "/model" set to '"cf-no-such-model-7f3a"'
      Then the response answers the condition "unknown-model"

    Scenario: Safety: an unknown model never gets a server error
      When I send a chat request with "/model" set to '"cf-no-such-model-7f3a"'
      Then the response is not a server error

    Scenario: A body over the cap is a client error
      When I send a chat request over the body cap
      Then the response answers the condition "body-over-cap"

    Scenario: Safety: a body over the cap never gets a server error
      When I send a chat request over the body cap
      Then the response is not a server error

    Scenario: A caller over its rate limit is told so
      Given I authenticate with the "fresh rate-limited" token
      When I send 6 chat requests
      Then the response answers the condition "rate-limited"

  Rule: Unknown routes are not found

    Scenario: An unknown route is not found
      When I GET "/v1/cf-no-such-route"
      Then the response answers the condition "unknown-route"

    Scenario: A wrong method on a known route is not found (405 is non-strict)
      When I send DELETE "/v1/chat/completions"
      Then the response answers the condition "wrong-method"

  Rule: Streams are framed as OpenAI streams

    @needs-mock
    Scenario: A stream is data lines ending with [DONE], with the usage chunk when asked
      Given the request field "/stream_options" is '{"include_usage": true}'
      And the upstream streams "Hello from the stream" in 3 chunks 10 ms apart
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "Hello from the stream"
      And the stream ends with the DONE marker
      And the stream contains a usage chunk

    @needs-mock
    Scenario: Streamed tool-call arguments are reassembled exactly
      Given the request defines the caller tool "get_stock_price"
      And the upstream streams the tool call "get_stock_price" with arguments '{"ticker": "ACME", "days": [1, 2, 3]}' split into 5 parts
      When I send a streaming chat request
      Then the response status is 200
      And the streamed tool call arguments are '{"ticker": "ACME", "days": [1, 2, 3]}'

    @needs-mock
    Scenario: A failure mid-stream is signalled in-band
      Given the upstream streams 2 chunks and then "drops the connection"
      When I send a streaming chat request
      Then the stream signals the condition "upstream-drop-mid-stream"

    @needs-mock @cancellation
    Scenario: A client that disconnects cancels the upstream stream
      Given the upstream streams "one two three four five six seven eight nine ten" in 10 chunks 150 ms apart
      When I send a streaming chat request and disconnect after 2 chunks
      Then the upstream saw the client disconnect

  Rule: Upstream failures keep their class

    @needs-mock
    Scenario: An upstream 4xx stays a 4xx
      Given the upstream answers with the error status 422 and message "the prompt was rejected by policy"
      When I send a chat request
      Then the response answers the condition "upstream-4xx"

    @needs-mock
    Scenario: An upstream 5xx becomes a 5xx
      Given the upstream answers with the error status 500 and message "the model backend failed"
      When I send a chat request
      Then the response answers the condition "upstream-5xx"

    @needs-mock
    Scenario: An upstream context-length refusal is the caller's 400
      Given the upstream answers with its context-length error
      When I send a chat request
      Then the response answers the condition "context-length"

  Rule: Safety: no upstream host, URL or key in any body or header

    @needs-mock
    Scenario Outline: Safety: an upstream <status> naming its host and key reveals neither
      Given the upstream answers with the error status <status> and message "call to http://10.20.30.40:8000/v1/chat/completions with key sk-live-9f8e7d6c5b4a failed"
      When I send a chat request
      Then the response reveals no upstream details in its body or headers

      Examples:
        | status |
        | 400    |
        | 500    |

    @needs-mock
    Scenario: Safety: a successful answer names no upstream in its headers
      Given the upstream answers with the text "All good."
      When I send a chat request
      Then the response status is 200
      And the response reveals no upstream details in its body or headers
