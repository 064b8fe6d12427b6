@request_ids @dgx
Feature: Request ids
  Every response, on every path, success or error, carries "x-request-id": the caller's own id if
  it sent a sane one, else a new UUID (SPEC §2). Operators find a failure in the logs by it
  (seed 000 "internal_error": "check server logs with x-request-id"), and an internal_error message
  carries the request id (SPEC §3 catalog), never the panic's details.

  Background:
    Given I authenticate with the "primary" token

  Scenario Outline: A response to <method> <path> carries a new UUID when the caller sent none
    When I send <method> "<path>"
    Then the header "x-request-id" is a UUID

    Examples:
      | method | path                 |
      | GET    | /errors              |
      | GET    | /v1/models           |
      | GET    | /v1/nope             |
      | POST   | /v1/chat/completions |

  Scenario: An authentication error carries a new UUID
    Given no Authorization header
    When I GET "/v1/models"
    Then the response is the error "missing_authorization"
    And the header "x-request-id" is a UUID

  Scenario: A chat completion carries a new UUID
    When I send a chat request
    Then the response status is 200
    And the header "x-request-id" is a UUID

  Scenario Outline: A sane caller id is echoed (<id>)
    Given the header "x-request-id" is "<id>"
    When I send a chat request
    Then the response status is 200
    And the header "x-request-id" is "<id>"

    Examples:
      | id                                   |
      | conformance-req-0001                 |
      | 3f2b9c1e-8d4a-4e6f-9a7b-2c1d0e9f8a7b |

  Scenario: A sane caller id is echoed on an error too
    Given the header "x-request-id" is "conformance-req-0002"
    When I send the raw body 'not json'
    Then the response is the error "invalid_json"
    And the header "x-request-id" is "conformance-req-0002"

  @needs-mock
  Scenario: A sane caller id is echoed on a stream
    Given the header "x-request-id" is "conformance-req-0003"
    And the upstream streams "Hello there" in 2 chunks 10 ms apart
    When I send a streaming chat request
    Then the response status is 200
    And the header "x-request-id" is "conformance-req-0003"

  Scenario Outline: An insane caller id is replaced by a new UUID (<id>)
    Given the header "x-request-id" is "<id>"
    When I GET "/v1/models"
    Then the header "x-request-id" is a UUID

    Examples:
      | id                          |
      | has spaces in it            |
      | <script>alert(1)</script>   |
      | ;DROP TABLE requests;--     |

  @needs-fault-injection
  Scenario: A panic is caught and answered with internal_error carrying the request id
    Given the header "x-request-id" is "conformance-panic-0001"
    And the gateway will panic on the next request
    When I send a chat request
    Then the response is the error "internal_error"
    And the error message contains the request id
    And the header "x-request-id" is "conformance-panic-0001"

  @needs-fault-injection
  Scenario: The gateway keeps serving after a caught panic
    Given the gateway will panic on the next request
    When I send a chat request
    Then the response is the error "internal_error"
    When I send a chat request
    Then the response status is 200
