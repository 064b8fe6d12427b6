@max_tokens_floor @dgx
Feature: The silent max_tokens floor
  Some upstreams reject small token limits (cloud paths need >= 16, reasoning models >= 200). When
  max_tokens or max_completion_tokens is below the model's constraints.min_max_tokens, the gateway
  raises it to that minimum and says so in BOTH response headers, "spass-applied:
  max_tokens_floored=<n>" (current cut) and "x-rust-api-applied: max_tokens_floored=<n>" (earlier
  cut, still read by clients) (SPEC §3 "Silent adjustments", seeds 000 and 001). Only when the
  upstream still rejects the floored value does an error surface: max_tokens_below_minimum with
  param "/max_tokens". A non-positive value is a plain invalid_field and is never floored (SPEC §3
  check order: field ranges before the floor). In the embedded configuration the "default" model
  has min_max_tokens 16 and the "reasoning" model 200.

  Background:
    Given I authenticate with the "primary" token

  @needs-mock @needs-config
  Scenario Outline: A max_tokens below the model minimum is raised and reported in both headers
    Given I use the "<model>" model
    When I send a chat request with "/max_tokens" set to "<sent>"
    Then the response status is 200
    And the header "spass-applied" is "max_tokens_floored=<floor>"
    And the header "x-rust-api-applied" is "max_tokens_floored=<floor>"
    And the upstream request had "max_tokens" = <floor>

    Examples:
      | model     | sent | floor |
      | default   | 1    | 16    |
      | default   | 15   | 16    |
      | reasoning | 50   | 200   |
      | reasoning | 199  | 200   |

  @needs-config
  Scenario: A max_completion_tokens below the model minimum is raised and reported too
    Given I use the "reasoning" model
    When I send a chat request with "/max_completion_tokens" set to "10"
    Then the response status is 200
    And the header "spass-applied" is "max_tokens_floored=200"
    And the header "x-rust-api-applied" is "max_tokens_floored=200"

  @needs-mock @needs-config
  Scenario Outline: A max_tokens at or above the minimum is forwarded unchanged and silently
    Given I use the "<model>" model
    When I send a chat request with "/max_tokens" set to "<sent>"
    Then the response status is 200
    And the header "spass-applied" is absent
    And the header "x-rust-api-applied" is absent
    And the upstream request had "max_tokens" = <sent>

    Examples:
      | model     | sent |
      | default   | 16   |
      | default   | 500  |
      | reasoning | 200  |
      | reasoning | 1000 |

  Scenario: A request without max_tokens carries no adjustment header
    When I send a chat request
    Then the response status is 200
    And the header "spass-applied" is absent
    And the header "x-rust-api-applied" is absent

  @needs-mock
  Scenario Outline: A non-positive max_tokens is invalid_field and is not floored
    When I send a chat request with "/max_tokens" set to "<sent>"
    Then the response is the error "invalid_field"
    And the error param is "/max_tokens"
    And the header "spass-applied" is absent
    And the upstream received 0 requests

    Examples:
      | sent |
      | 0    |
      | -1   |
      | -200 |

  @needs-mock @needs-config
  Scenario Outline: When the upstream still rejects the floored value the error names /max_tokens
    Given I use the "<model>" model
    And the upstream answers with its max-tokens error
    When I send a chat request with "/max_tokens" set to "<sent>"
    Then the response is the error "max_tokens_below_minimum"
    And the error param is "/max_tokens"
    And the error message reveals no upstream details

    Examples:
      | model     | sent |
      | reasoning | 50   |
      | default   | 1    |

  @needs-mock @needs-config
  Scenario: The adjustment headers are sent on a streaming response as well
    Given the request field "/max_tokens" is "1"
    And the upstream streams "Hello there" in 2 chunks 10 ms apart
    When I send a streaming chat request
    Then the response status is 200
    And the header "spass-applied" is "max_tokens_floored=16"
    And the header "x-rust-api-applied" is "max_tokens_floored=16"
    And the upstream request had "max_tokens" = 16
