@needs-config
Feature: Production conditions of seeds 003 and 004
  SPEC §3 "Extension codes" (issue 11): a key past its lifetime, a suspended tenant, too many
  requests in flight, a tenant-wide limit, a model without tool or vision support, a prompt
  over the context window, a model still loading, an upstream that cannot take more work.
  Each answers with its own stable code in the one envelope; every 429 and 503 carries
  Retry-After; refusals before the upstream make no upstream call.

  Rule: Auth → key expiry → tenant disabled (seed 003)

    Scenario: A token past its expires_at is key_expired
      Given I authenticate with the "expired" token
      When I send a chat request
      Then the response is the error "key_expired"
      And the response status is 401
      And the upstream received 0 requests

    Scenario: A token of a disabled tenant is tenant_disabled
      Given I authenticate with the "disabled tenant" token
      When I send a chat request
      Then the response is the error "tenant_disabled"
      And the response status is 403
      And the upstream received 0 requests

    Scenario: A token of a disabled tenant cannot read /v1/info either
      Given I authenticate with the "disabled tenant" token
      When I GET "/v1/info"
      Then the response is the error "tenant_disabled"

  Rule: Tenant-wide limit before the token's own (seed 003 tenant_qps_limit)

    @needs-mock
    Scenario: The tenant's bucket is shared by all of its tokens
      Given I authenticate with the "tenant-bucket" token
      When I send 2 chat requests
      Then 2 of the responses had status 200
      Given I authenticate with the "tenant-bucket" token
      When I send a chat request
      Then the response is the error "tenant_rate_limit_exceeded"
      And the response status is 429
      And the response has a whole-seconds Retry-After
      # The tenant's bucket refills one request per 100 s (rps 0.01, burst 2): the refusal
      # comes well within a second of the first request, so one request fits again in just
      # under 100 s, and Retry-After (RFC 9110 §10.2.3, whole seconds) rounds that up.
      And the header "Retry-After" is "100"

  Rule: Per-token concurrency: a stream counts until it ends (seed 003 concurrency_limit)

    @needs-mock
    Scenario: With max_concurrent 1, one of three parallel streams is admitted, the rest are refused at once
      Given I authenticate with the "single-slot" token
      And the upstream streams "one two three four five six" in 6 chunks 150 ms apart
      When I send 3 streaming chat requests in parallel
      Then 1 of the responses had status 200
      And 2 of the responses had status 429
      And the refused responses are the error "concurrency_limit_exceeded"
      And every response with status 429 has a whole-seconds Retry-After
      And the upstream received 1 request

    @needs-mock
    Scenario: The slot is free again once the stream has ended
      Given I authenticate with the "single-slot" token
      And the upstream streams "one two three" in 3 chunks 50 ms apart
      When I send a streaming chat request
      Then the response status is 200
      When I send a chat request
      Then the response status is 200

  Rule: Capabilities are checked before content (seed 003)

    Scenario: tools sent to a model without tool support
      Given I use the "text_only" model
      And the request defines the caller tool "get_time"
      When I send a chat request
      Then the response is the error "model_does_not_support_tools"
      And the error param is "/tools"
      And the upstream received 0 requests

    Scenario: An image sent to a model without vision is refused before the image checks
      Given I use the "text_only" model
      And the user message carries the image URL "data:image/png;base64,not-even-base64"
      When I send a chat request
      Then the response is the error "model_does_not_support_vision"
      And the error param is "/messages/0/content/1"
      And the upstream received 0 requests

  Rule: context_length_exceeded (seeds 003, 004)

    Scenario: max_tokens alone over the model's context window is refused locally
      Given I use the "small_window" model
      And the request field "/max_tokens" is "4096"
      When I send a chat request
      Then the response is the error "context_length_exceeded"
      And the response status is 400
      And the upstream received 0 requests

    @needs-mock
    Scenario Outline: The upstream's context-window refusal is context_length_exceeded (<model>)
      Given I use the "<model>" model
      And the upstream answers with its context-length error
      When I send a chat request
      Then the response is the error "context_length_exceeded"
      And the error param is "/messages"
      And the error message reveals no upstream details

      Examples:
        | model      |
        | default    |
        | litellm    |
        | openrouter |

  Rule: model_loading and upstream_overloaded are 503 with Retry-After (seeds 003, 004)

    @needs-mock
    Scenario Outline: An upstream that is still loading the model (<model>)
      Given I use the "<model>" model
      And the upstream answers with the error status 503 and message "<message>"
      When I send a chat request
      Then the response is the error "model_loading"
      And the response status is 503
      And the response has a whole-seconds Retry-After

      Examples:
        | model   | message                                     |
        | default | model is loading                            |
        | litellm | model is loading                            |
        | default | Model mock-default is currently loading     |

    @needs-mock
    Scenario Outline: An upstream that says it is overloaded (<model>)
      Given I use the "<model>" model
      And the upstream answers with the error status <status> and message "<message>"
      When I send a chat request
      Then the response is the error "upstream_overloaded"
      And the response status is 503
      And the response has a whole-seconds Retry-After

      Examples:
        | model   | status | message                                                          |
        | default | 503    | server busy, please try again.  maximum pending requests exceeded |
        | litellm | 503    | The engine is currently overloaded, please try again later       |

    @needs-mock
    Scenario: The alias's upstream cap is full: the rest are shed at once with 503
      Given I use the "capped" model
      And the upstream streams "one two three four five six" in 6 chunks 150 ms apart
      When I send 3 streaming chat requests in parallel
      Then 1 of the responses had status 200
      And 2 of the responses had status 503
      And the refused responses are the error "upstream_overloaded"
      And every response with status 503 has a whole-seconds Retry-After
