@auth @dgx
Feature: Authentication
  Every /v1/* and /c1/* endpoint requires a bearer token (SPEC §2). A request without an
  Authorization header gets missing_authorization (401, param "headers.authorization"); a bearer
  that matches no token, or an X-Tenant-Id header naming a tenant the token is not bound to, gets
  invalid_authorization (401) (SPEC §3 catalog). Authentication is checked right after routing and
  before rate limiting, body size, JSON and everything else (SPEC §3 check order), so an
  unauthenticated caller never learns whether its body or model would have been accepted, and the
  presented bearer is never echoed back.

  Background:
    Given I authenticate with the "primary" token

  Scenario Outline: A request without an Authorization header is rejected on every protected route
    Given no Authorization header
    When I send <method> "<path>"
    Then the response is the error "missing_authorization"
    And the error param is "headers.authorization"

    Examples:
      | method | path                                     |
      | POST   | /v1/chat/completions                     |
      | GET    | /v1/models                               |
      | GET    | /v1/info                                 |
      | POST   | /c1/chat/completions                     |
      | GET    | /c1/conversations?user_id=alice          |
      | GET    | /c1/conversations/conv-1?user_id=alice   |
      | DELETE | /c1/conversations/conv-1?user_id=alice   |

  Scenario: A well-formed chat request without an Authorization header is rejected
    Given no Authorization header
    When I send a chat request
    Then the response is the error "missing_authorization"
    And the error param is "headers.authorization"

  Scenario Outline: An Authorization header that matches no token is rejected
    Given the header "Authorization" is "<authorization>"
    When I send a chat request
    Then the response is the error "invalid_authorization"

    Examples:
      | authorization                          |
      | Bearer not-a-real-token-4242           |
      | Bearer                                 |
      | Basic dXNlcjpwYXNzd29yZA==             |
      | not-a-scheme-at-all                    |

  Scenario: The presented bearer is never echoed in the error
    Given the header "Authorization" is "Bearer sk-conformance-secret-7f3a9b"
    When I GET "/v1/models"
    Then the response is the error "invalid_authorization"
    And the error message does not contain "sk-conformance-secret-7f3a9b"

  @needs-config
  Scenario: An X-Tenant-Id naming another tenant is rejected even with a valid token
    Given the header "X-Tenant-Id" names the "second" tenant
    When I GET "/v1/models"
    Then the response is the error "invalid_authorization"

  Scenario: An X-Tenant-Id naming an unknown tenant is rejected
    Given the header "X-Tenant-Id" is "no-such-tenant-7f3a"
    When I send a chat request
    Then the response is the error "invalid_authorization"

  Scenario: An X-Tenant-Id naming the token's own tenant is accepted
    Given the header "X-Tenant-Id" names the "primary" tenant
    When I GET "/v1/models"
    Then the response status is 200

  Scenario: A valid bearer is accepted
    When I GET "/v1/models"
    Then the response status is 200

  @needs-config
  Scenario: The second tenant's token is a valid token of its own
    Given I authenticate with the "second tenant" token
    When I GET "/v1/models"
    Then the response status is 200

  Scenario Outline: The public endpoints need no token
    Given no Authorization header
    When I GET "<path>"
    Then the response status is 200

    Examples:
      | path          |
      | /errors       |
      | /docs/errors  |
      | /openapi.json |
      | /healthz      |
