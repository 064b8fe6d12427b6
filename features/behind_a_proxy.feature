@behind_a_proxy
Feature: An upstream behind a LiteLLM proxy reaches the caller in the gateway's own words
  Teams run the gateway in front of a LiteLLM proxy (issue 16). Whatever the proxy wraps around
  the upstream's answer, the caller sees what the upstream said: an upstream 429 with
  `retry-after: 7` gives the caller `Retry-After: 7` (LiteLLM forwards it renamed as
  `llm_provider-retry-after`); an upstream 400 "the prompt was rejected by policy" gives a message
  containing that sentence and no redaction markers, no proxy exception prefixes or routing
  chatter, and not the upstream's model name; a context-window refusal gives
  `context_length_exceeded`. The same holds with no proxy in between (the "default" model).

  Background:
    Given I authenticate with the "primary" token

  @needs-mock
  Scenario Outline: An upstream 429 with retry-after 7 gives the caller Retry-After 7 (<model>)
    Given I use the "<model>" model
    And the upstream answers with the error status 429, message "slow down" and the header "retry-after" = "7"
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the header "retry-after" is "7"
    And the error message reveals no upstream details

    Examples:
      | model   |
      | default |
      | litellm |

  @needs-mock
  Scenario Outline: An upstream 400 reaches the caller as the upstream's own sentence (<model>)
    Given I use the "<model>" model
    And the upstream answers with the error status 400 and message "the prompt was rejected by policy"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the response status is 400
    And the error message contains "the prompt was rejected by policy"
    And the error message does not contain "[redacted]"
    And the error message does not contain "Exception"
    And the error message does not contain "Error:"
    And the error message does not contain "model group"
    And the error message does not contain "No fallback was attempted"
    And the error message does not name the upstream model
    And the error message reveals no upstream details

    Examples:
      | model   |
      | default |
      | litellm |

  @needs-mock
  Scenario Outline: A context-window refusal is context_length_exceeded (<model>)
    Given I use the "<model>" model
    And the upstream answers with its context-length error
    When I send a chat request
    Then the response is the error "context_length_exceeded"
    And the error message does not contain "[redacted]"
    And the error message does not contain "model group"
    And the error message reveals no upstream details

    Examples:
      | model   |
      | default |
      | litellm |
