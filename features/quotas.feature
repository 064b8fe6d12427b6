@quotas @dgx
Feature: Model budgets and upstream quotas
  A tenant's budget for a model is kept by the gateway's own ledger: a request reserves its share
  before the upstream call, so parallel requests cannot overspend it (SPEC §3 "Budgets and limits
  hold under concurrency"). A used-up budget, and an upstream that answers with a quota, credit or
  rate-window error, both become model_quota_exhausted (429, Retry-After in whole seconds): the
  body is provider-agnostic and names no upstream, no token counts and no billing URL (SPEC §3,
  seed 000 "model_quota_exhausted", ADR 0006 v2). The only provider-specific exception is an
  OpenRouter-pinned alias at its daily limit: openrouter_daily_quota_exhausted with Retry-After
  equal to the seconds until the next 00:00 UTC, top-level "dgx_code" and "available_fallbacks"
  (SPEC §3, seed 000 "openrouter_daily_quota_exhausted"). The quota check comes after the content
  checks and the max_tokens floor and before the upstream call (SPEC §3 check order).

  Background:
    Given I authenticate with the "primary" token

  @needs-config @needs-mock
  Scenario: Parallel requests cannot overspend a tenant's daily budget
    Given I use the "budget" model
    When I send 5 chat requests in parallel
    Then 2 of the responses had status 200
    And 3 of the responses had status 429
    And the upstream received 2 requests
    # The budget is per day (requests_per_day): the clock passing into the next second
    # gives nothing back; only 00:00 UTC does.
    When 1100 ms have passed
    And I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the response has a whole-seconds Retry-After
    And the error message reveals no upstream details
    And the body has no field "/dgx_code"
    And the body has no field "/available_fallbacks"
    And the upstream received 2 requests
    # content checks come before the quota check (SPEC §3 check order)
    Given the user message carries the image URL "data:image/bmp;base64,Qk0="
    When I send a chat request
    Then the response is the error "image_decode_error"

  @needs-mock
  Scenario Outline: An upstream quota, credit or rate-window answer becomes model_quota_exhausted
    Given I use the "<model>" model
    And the upstream answers with its <kind> error
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the response has a whole-seconds Retry-After
    And the error message reveals no upstream details
    And the error message does not contain "billing"
    And the body has no field "/available_fallbacks"

    Examples:
      | model      | kind              |
      | litellm    | quota-exhaustion  |
      | litellm    | rate-window       |
      | openrouter | credit-exhaustion |
      | openrouter | rate-window       |

  @needs-mock @needs-config
  Scenario: An OpenRouter-pinned alias at its daily limit names its fallbacks and the reset time
    Given I use the "openrouter" model
    And the upstream answers with its daily-limit error
    When I send a chat request
    Then the response is the error "openrouter_daily_quota_exhausted"
    And Retry-After is the number of seconds until 00:00 UTC
    And the body field "/dgx_code" is "openrouter_daily_quota_exhausted"
    And the body has the field "/available_fallbacks/0"
    And the error message does not contain "sk-or-"

  @needs-mock @needs-config
  Scenario: The daily limit of an OpenRouter alias is reported the same way on a streaming request
    Given I use the "openrouter" model
    And the upstream answers with its daily-limit error
    When I send a streaming chat request
    Then the response is the error "openrouter_daily_quota_exhausted"
    And the header "content-type" contains "application/json"
    And Retry-After is the number of seconds until 00:00 UTC
    And the body has the field "/available_fallbacks/0"

  # OpenRouter's 429 names the free-model daily window as a rate-limit key
  # ("free-models-per-day") and in words ("… requests per day"), not always both: either one
  # marks the daily limit (the mock's own daily-limit body carries both).
  @needs-mock @needs-config
  Scenario Outline: OpenRouter's daily limit is recognised by either spelling (<spelling>)
    Given I use the "openrouter" model
    And the upstream answers with the error status 429 and message "<message>"
    When I send a chat request
    Then the response is the error "openrouter_daily_quota_exhausted"
    And Retry-After is the number of seconds until 00:00 UTC

    Examples:
      | spelling | message                                             |
      | key      | Rate limit exceeded: free-models-per-day            |
      | words    | Rate limit exceeded: 50 free model requests per day |

  # The token budget counts what the upstream reported in "usage", not what was reserved
  # (SPEC §3 "Budgets and limits hold under concurrency": reserve the prompt estimate plus the
  # output cap first, settle with the real usage after). The token_budget model allows 50
  # tokens a day. A short request with max_tokens 1 reserves far less than half of that, so two
  # such reservations fit; but the upstream reports 46 tokens for the first answer, and once
  # that is settled the second request no longer fits: it is refused without reaching the
  # upstream.
  @needs-config @needs-mock
  Scenario: A token budget is settled with the usage the upstream reported
    Given I use the "token_budget" model
    And the request field "/max_tokens" is "1"
    And the upstream answers with the text "Short.", reporting 40 prompt and 6 completion tokens
    When I send a chat request
    Then the response status is 200
    And the body field "/usage/total_tokens" is "46"
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the response has a whole-seconds Retry-After
    And the upstream received 1 request

  # Settled with what was reported and no more: each answer costs its reported total_tokens
  # (SPEC §3), not some other reading of its usage. The `tool-loop budget` tenant has 200 tokens
  # a day on token_budget; a short request with max_tokens 1 reserves its prompt estimate plus
  # one, under 20 tokens. The first answer reports 100 prompt and 20 completion tokens (120), so
  # the second request still fits; it reports 65 and 10 (75), and with 195 of the 200 spent the
  # third no longer fits. Charging the first answer more than its 120 (its prompt twice, its
  # counts read into the wrong fields) refuses the second request; charging the second less
  # than its 75 lets the third through.
  @needs-config @needs-mock
  Scenario: A token budget is charged exactly the reported total of each answer
    Given I authenticate with the "tool-loop budget" token
    And I use the "token_budget" model
    And the request field "/max_tokens" is "1"
    And the upstream answers with the text "Short.", reporting 100 prompt and 20 completion tokens
    And the upstream answers with the text "Short.", reporting 65 prompt and 10 completion tokens
    When I send a chat request
    Then the response status is 200
    And the body field "/usage/prompt_tokens" is "100"
    And the body field "/usage/total_tokens" is "120"
    When I send a chat request
    Then the response status is 200
    And the body field "/usage/total_tokens" is "75"
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the upstream received 2 requests

  # The same on a stream: its usage report's total_tokens is what it costs, even where the
  # report's total is not the sum of its parts (a provider may count tokens it lists under no
  # other field). One event holds the answer and the report: 5 prompt, 5 completion, 150 in all;
  # with 150 of the 200 tokens spent, a request reserving 60 more than its prompt no longer
  # fits. Charging the sum of the parts (10) would let it through.
  @needs-config @needs-mock
  Scenario: A stream is charged the total_tokens its usage report states
    Given I authenticate with the "tool-loop budget" token
    And I use the "token_budget" model
    And the request field "/max_tokens" is "1"
    And the upstream streams only the event '{"id": "chatcmpl-total", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Short."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 150}}', 1 times
    When I send a streaming chat request
    Then the response status is 200
    And the stream ends with the DONE marker
    Given the request field "/max_tokens" is "60"
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the upstream received 1 request

  # The other direction, on the second tenant's own token budget (50 a day): a request the
  # upstream failed produced no answer and reported no usage, so it is settled with nothing
  # used, streamed or not. This request reserves more than half of the budget (a longer
  # prompt), so had either failure kept its share, the last request would not fit.
  @needs-config @needs-mock
  Scenario: A request the upstream failed does not use up the token budget
    Given I authenticate with the "second tenant" token
    And I use the "token_budget" model
    And the request field "/max_tokens" is "1"
    And the request field "/messages/1" is '{"role": "user", "content": "Summarise the weather report for the northern coast in two short sentences, please."}'
    And the upstream answers with the error status 500 and message "the engine crashed"
    And the upstream answers with the error status 500 and message "the engine crashed"
    When I send a streaming chat request
    Then the response is the error "upstream_error"
    When I send a chat request
    Then the response is the error "upstream_error"
    When I send a chat request
    Then the response status is 200
    And the upstream received 3 requests

  # A caller that hangs up before the answer abandons its request: SPEC §3 charges it "for
  # what was sent and streamed, never 0" (here its prompt: nothing was streamed) and gives the
  # rest of its reservation back. The `tool-loop budget` tenant has 200 tokens a day on
  # token_budget; a request with max_tokens 150 reserves over 150, so two such reservations
  # never fit together: the second request fits only if the abandoned one's was released.
  @needs-config @needs-mock
  Scenario: A caller that hangs up gives back the rest of its reservation
    Given I authenticate with the "tool-loop budget" token
    And I use the "token_budget" model
    And the request field "/max_tokens" is "150"
    And the upstream hangs
    When I send a chat request and give up after 300 ms
    Then the upstream saw the client disconnect
    When I send a chat request
    Then the response status is 200
    And the upstream received 2 requests

  # And a caller that hangs up in the middle of a stream is charged for what was streamed to it
  # (SPEC §3: "for what was sent and streamed, never 0"), counted from the text it was sent.
  # 8 chunks of 94 bytes; the caller reads 5 events, so at least 4 chunks of text (376 bytes,
  # 94 tokens at the 4 bytes a token of the estimate) went out. With the prompt (over 4 tokens)
  # that leaves under 102 of the 200 tokens, and a request reserving its max_tokens of 120 no
  # longer fits; had the stream been charged its prompt alone, it would.
  @needs-config @needs-mock
  Scenario: A caller that hangs up mid-stream is charged for the text streamed to it
    Given I authenticate with the "tool-loop budget" token
    And I use the "token_budget" model
    And the request field "/max_tokens" is "150"
    And the upstream streams "The survey teams walked the northern coast path after the spring storms and noted the damage. " repeated 8 times in 8 chunks 20 ms apart
    When I send a streaming chat request and disconnect after 5 chunks
    Then the upstream saw the client disconnect
    Given the request field "/max_tokens" is "120"
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the upstream received 1 request

  # A request reserves its share before the upstream call (SPEC §3): its prompt (estimated from
  # the text it sends) plus what it may produce (its max_tokens, else the model's output cap,
  # 8192 on every embedded model). Either alone can be more than a whole day's budget of 50
  # tokens; such a request is refused up front, whatever was spent before, and never reaches
  # the upstream. (The fresh tenant's token budget only ever sees these refusals.) Every message
  # costs its framing as well as its text: OpenAI's cookbook ("How to count tokens with
  # tiktoken") counts 3 tokens a message plus 3 for the reply, so sixteen one-character
  # messages are 67 tokens before max_tokens, more than the 50.
  @needs-config @needs-mock
  Scenario Outline: A request whose share is larger than the whole token budget is refused before the upstream call (<what>)
    Given I authenticate with the "fresh" token
    And I use the "token_budget" model
    And the request field "<where>" is '<message>'
    And the request field "/max_tokens" is "<max_tokens>"
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the upstream received 0 requests

    Examples:
      | what                 | where       | max_tokens | message |
      | a long text prompt   | /messages/1 | 1          | {"role": "user", "content": "Please read the attached field notes carefully and then summarise, in plain words, what the survey teams observed along the northern coast during the spring storms: wind speeds, wave heights, damage to the harbour walls, the state of the coastal path, and any changes to the dunes near the lighthouse since the report of the previous season was written."} |
      | a long text part     | /messages/0 | 1          | {"role": "user", "content": [{"type": "text", "text": "Please read the attached field notes carefully and then summarise, in plain words, what the survey teams observed along the northern coast during the spring storms: wind speeds, wave heights, damage to the harbour walls, the state of the coastal path, and any changes to the dunes near the lighthouse since the report of the previous season was written."}]} |
      | long tool arguments  | /messages/0 | 1          | {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "lookup_weather", "arguments": "[100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127, 128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143, 144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159, 160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198, 199]"}}]} |
      | sixteen short messages | /messages | 1        | [{"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}, {"role": "user", "content": "."}] |

  @needs-config @needs-mock
  Scenario: A request without max_tokens reserves the model's output cap and is refused by a small token budget
    Given I authenticate with the "fresh" token
    And I use the "token_budget" model
    When I send a chat request
    Then the response is the error "model_quota_exhausted"
    And the upstream received 0 requests
