@rate_limits @needs-config @dgx
Feature: Per-token rate limiting
  Each bearer has its own token bucket, keyed on the SHA-256 of the bearer and never on the
  client address (SPEC §3 rate_limit_exceeded; default refill 1 request/s, burst 30). When the
  bucket is empty the answer is rate_limit_exceeded (429) with a Retry-After header in whole
  seconds and the OpenAI-style headers x-ratelimit-limit-requests, x-ratelimit-remaining-requests
  and x-ratelimit-reset-requests. The limit holds under concurrency (SPEC §3 "Budgets and limits
  hold under concurrency") and is checked right after authentication, before the body is
  read (SPEC §3 check order).

  The scenarios use a fresh rate-limited token from the embedded configuration: a bucket of its
  own with burst 3 and a refill of 1 request per second.

  Background:
    Given I authenticate with the "fresh rate-limited" token

  Scenario: The burst is admitted and the next request is rejected with Retry-After
    When I send 4 chat requests
    Then 3 of the responses had status 200
    And the response is the error "rate_limit_exceeded"
    And the response has a whole-seconds Retry-After
    And the header "x-ratelimit-limit-requests" is present
    And the header "x-ratelimit-remaining-requests" is "0"
    And the header "x-ratelimit-reset-requests" is present

  Scenario: Admitted responses carry the x-ratelimit headers too
    When I send a chat request
    Then the response status is 200
    And the header "x-ratelimit-limit-requests" is present
    And the header "x-ratelimit-remaining-requests" is present
    And the header "x-ratelimit-reset-requests" is present

  Scenario: After waiting Retry-After seconds the token is admitted again
    When I send 4 chat requests
    Then the response is the error "rate_limit_exceeded"
    When I wait for the Retry-After period
    And I send a chat request
    Then the response status is 200

  Scenario: Parallel requests cannot get past the burst
    When I send 6 chat requests in parallel
    Then 3 of the responses had status 200
    And 3 of the responses had status 429

  Scenario: Buckets belong to tokens, so another token is unaffected
    When I send 4 chat requests
    Then the response is the error "rate_limit_exceeded"
    Given I authenticate with the "fresh" token
    When I send a chat request
    Then the response status is 200

  Scenario: A spoofed client address does not refill the bucket
    When I send 4 chat requests
    Then the response is the error "rate_limit_exceeded"
    Given the header "X-Forwarded-For" is "203.0.113.77"
    And the header "X-Real-IP" is "203.0.113.78"
    When I send a chat request
    Then the response is the error "rate_limit_exceeded"

  Scenario: The rate limit is checked before the body is read
    When I send 3 chat requests
    And I send the raw body '{this is not json'
    Then the response is the error "rate_limit_exceeded"
    And the response has a whole-seconds Retry-After

  Scenario: The rate limit is checked before the model allowlist
    When I send 3 chat requests
    And I send a chat request with "/model" set to '"no-such-model"'
    Then the response is the error "rate_limit_exceeded"

  # The values below follow from the bucket alone (burst 3, one request per second): OpenAI's
  # x-ratelimit-reset-requests is "the time until the rate limit resets to its initial state"
  # (a Go duration such as 1s, 6m0s, 20ms), x-ratelimit-remaining-requests what is left after
  # this request, and Retry-After (RFC 9110 §10.2.3) the whole seconds until one request fits.
  Scenario: The first admitted request reports the exact limit, remaining count and reset
    When I send a chat request
    Then the response status is 200
    And the header "x-ratelimit-limit-requests" is "3"
    And the header "x-ratelimit-remaining-requests" is "2"
    And the header "x-ratelimit-reset-requests" is "1s"

  Scenario: Each admitted request takes one from the bucket and adds one period to the reset
    When I send 2 chat requests
    Then 2 of the responses had status 200
    And the header "x-ratelimit-remaining-requests" is "1"
    And the header "x-ratelimit-reset-requests" is "2s"
    When I send a chat request
    Then the response status is 200
    And the header "x-ratelimit-remaining-requests" is "0"
    And the header "x-ratelimit-reset-requests" is "3s"

  Scenario: A refusal names the exact wait and the time to a full bucket
    When I send 4 chat requests
    Then 3 of the responses had status 200
    And the response is the error "rate_limit_exceeded"
    And the header "Retry-After" is "1"
    And the header "x-ratelimit-limit-requests" is "3"
    And the header "x-ratelimit-remaining-requests" is "0"
    And the header "x-ratelimit-reset-requests" is "3s"

  # A whole minute is written the Go way, as OpenAI writes its own resets (6m0s): 1m0s, not
  # 60s. The "minute-bucket" token refills one request per 20 s (rps 0.05, burst 3): after
  # three requests the bucket is full again in just under 60 s, rounded up to whole seconds.
  Scenario: A reset of a whole minute is written 1m0s
    Given I authenticate with the "minute-bucket" token
    When I send 3 chat requests
    Then 3 of the responses had status 200
    And the header "x-ratelimit-remaining-requests" is "0"
    And the header "x-ratelimit-reset-requests" is "1m0s"

  # Retry-After tells a client when trying again can succeed (RFC 9110 §10.2.3 for 503, RFC
  # 6585 §4 for 429; SPEC §3 puts it on every 429 and 503). An answer that no retry can change,
  # a malformed request, a missing credential, an unknown route, carries none: a client that
  # honours the header would send the same request again and fail the same way.
  Scenario Outline: A <code> answer carries no Retry-After
    Given <setup>
    When <request>
    Then the response is the error "<code>"
    And the header "Retry-After" is absent

    Examples:
      | code                  | setup                               | request                             |
      | invalid_json          | I use the "default" model           | I send the raw body "{not json"     |
      | missing_authorization | no Authorization header             | I send a chat request               |
      | invalid_field         | the request field "/n" is "0"       | I send a chat request               |
      | route_not_found       | I use the "default" model           | I GET "/v1/no-such-route"           |
