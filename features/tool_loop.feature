@tool_loop @needs-mock @needs-config @dgx @condition.server-tool-loop
Feature: The server-side tool loop
  The gateway offers its configured server-side tools to the model; when the model calls one, the
  gateway runs it, appends the result as a "tool" message and calls the model again (SPEC §4). A
  call to a tool the caller defined in the request is returned to the caller as usual
  (finish_reason "tool_calls"). The loop ends in a narrative answer in every case:
  - at MAX_TOOL_ITERATIONS (10 in the embedded configuration) without a final answer, one more
    upstream call with "tools": [] synthesises the answer; HTTP 200, finish_reason "stop",
    "dgx_code": "tool_loop_max_iterations";
  - the same tool call (name + canonicalised arguments) twice in a row triggers the same synthesis
    call, with "dgx_code": "tool_loop_anti_loop_synthesised";
  - in a stream, the named event "spass.tool-cap" or "spass.tool-anti-loop" with the payload
    {"code", "iterations", "synth_called"} comes before the final content and "data: [DONE]".
  A caller never receives raw server-side tool_calls or an empty answer (SPEC §4, seed 000 "Tool-Loop
  Status-Codes"). The embedded configuration has the server-side tools "lookup_weather" (built in,
  deterministic) and "slow_http_tool" (an HTTP executor that times out).

  Background:
    Given I authenticate with the "primary" token

  Rule: Server-side tool calls are executed and never shown to the caller

    Scenario: A server-side tool call is executed and the model's final answer is returned
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the text "It is sunny in Berlin."
      When I send a chat request
      Then the response status is 200
      And the body matches the schema "chat_completion.json"
      And the body field "/choices/0/message/content" is "It is sunny in Berlin."
      And the body field "/choices/0/finish_reason" is "stop"
      And the body has no field "/dgx_code"
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 2 requests
      And upstream request 1 offered the tool "lookup_weather"
      And upstream request 2 contains a tool result message

    @slow
    Scenario: A server-side tool that fails is reported to the model, and the caller still gets an answer
      Given the upstream answers with the tool call "slow_http_tool" with arguments '{"query": "status"}'
      And the upstream answers with the text "The status service did not answer in time."
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" is "The status service did not answer in time."
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 2 requests
      And upstream request 2 contains a tool result message

    # The result appended for a failed tool is what the model answers from (SPEC §4: "appends
    # the result as a tool message"): a tool that timed out must be reported as a timeout, so
    # that the model can tell the caller "did not answer in time" rather than guess, and not
    # as, say, an unreachable tool. slow_http_tool never answers within its timeout.
    @slow
    Scenario: A server-side tool that times out is reported to the model as a timeout
      Given the upstream answers with the tool call "slow_http_tool" with arguments '{"query": "status"}'
      And the upstream answers with the text "The status service did not answer in time."
      When I send a chat request
      Then the response status is 200
      And the upstream received 2 requests
      And upstream request 2 contains a tool result message
      And the last upstream request contains the text "timed out"

  Rule: The loop is capped at exactly MAX_TOOL_ITERATIONS

    Scenario: Ten tool iterations without a final answer end in one synthesis call with no tools
      Given the upstream answers 10 times with distinct tool calls to "lookup_weather"
      And the upstream answers with the text "Summary of ten weather lookups."
      When I send a chat request
      Then the response is the tool-loop status "tool_loop_max_iterations"
      And the body field "/choices/0/finish_reason" is "stop"
      And the body field "/choices/0/message/content" is "Summary of ten weather lookups."
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 11 requests
      And upstream request 10 offered the tool "lookup_weather"
      And the last upstream request had an empty "tools" list

    Scenario: Nine tool iterations followed by a final answer need no synthesis
      Given the upstream answers 9 times with distinct tool calls to "lookup_weather"
      And the upstream answers with the text "Nine lookups, all sunny."
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" is "Nine lookups, all sunny."
      And the body has no field "/dgx_code"
      And the upstream received 10 requests
      And upstream request 10 offered the tool "lookup_weather"

  Rule: The same call twice in a row is a loop; two different calls are not

    Scenario: The second identical call triggers the synthesis call
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the text "Berlin is sunny, as the lookup said."
      When I send a chat request
      Then the response is the tool-loop status "tool_loop_anti_loop_synthesised"
      And the body field "/choices/0/finish_reason" is "stop"
      And the body field "/choices/0/message/content" is "Berlin is sunny, as the lookup said."
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 3 requests
      And the last upstream request had an empty "tools" list

    Scenario Outline: Arguments are compared after canonicalisation
      Given the upstream answers with the tool call "lookup_weather" with arguments '<first>'
      And the upstream answers with the tool call "lookup_weather" with arguments '<second>'
      And the upstream answers with the text "Same question twice, answered once."
      When I send a chat request
      Then the response is the tool-loop status "tool_loop_anti_loop_synthesised"
      And the upstream received 3 requests
      And the last upstream request had an empty "tools" list

      Examples:
        | first                                  | second                                  |
        | {"city": "Berlin", "unit": "celsius"}  | {"unit": "celsius", "city": "Berlin"}   |
        | {"city":"Berlin"}                      | { "city" : "Berlin" }                   |

    Scenario Outline: Two different calls in a row are not a loop
      Given the upstream answers with the tool call "lookup_weather" with arguments '<first>'
      And the upstream answers with the tool call "lookup_weather" with arguments '<second>'
      And the upstream answers with the text "Two different lookups."
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" is "Two different lookups."
      And the body has no field "/dgx_code"
      And the upstream received 3 requests
      And upstream request 3 offered the tool "lookup_weather"

      Examples:
        | first              | second                                |
        | {"city": "Berlin"} | {"city": "Paris"}                     |
        | {"city": "Berlin"} | {"city": "Berlin", "unit": "celsius"} |

    Scenario: The same call again after a different one is not a loop
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Paris"}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the text "Berlin, Paris, Berlin."
      When I send a chat request
      Then the response status is 200
      And the body has no field "/dgx_code"
      And the upstream received 4 requests
      And upstream request 4 offered the tool "lookup_weather"

  Rule: The usage of a tool-loop answer counts every upstream call

    # The caller is billed for every round the gateway ran on its behalf, so the answer's
    # "usage" is the sum over all upstream calls of the request (tool rounds and the synthesis
    # call), not the last call's count (SPEC §4; OpenAI "usage" of a completion).
    Scenario: The usage of an answer after a tool round is the sum of both calls
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 120 prompt and 7 completion tokens
      And the upstream answers with the text "Oslo is cold.", reporting 150 prompt and 4 completion tokens
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" is "Oslo is cold."
      And the body field "/usage/prompt_tokens" is "270"
      And the body field "/usage/completion_tokens" is "11"
      And the body field "/usage/total_tokens" is "281"

    Scenario: The usage of a synthesised answer includes the synthesis call
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 100 prompt and 5 completion tokens
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 110 prompt and 6 completion tokens
      And the upstream answers with the text "Oslo is cold, as the lookup said.", reporting 130 prompt and 9 completion tokens
      When I send a chat request
      Then the response is the tool-loop status "tool_loop_anti_loop_synthesised"
      And the body field "/usage/prompt_tokens" is "340"
      And the body field "/usage/completion_tokens" is "20"
      And the body field "/usage/total_tokens" is "360"

    Scenario: A streamed tool-loop answer reports the summed usage in its usage chunk
      Given the request field "/stream_options" is '{"include_usage": true}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 120 prompt and 7 completion tokens
      And the upstream answers with the text "Oslo is cold.", reporting 150 prompt and 4 completion tokens
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "Oslo is cold."
      And the streamed usage has "prompt_tokens" = 270
      And the streamed usage has "completion_tokens" = 11
      And the streamed usage has "total_tokens" = 281
      And the stream ends with the DONE marker

    # What the caller is billed is what its token budget is charged (SPEC §3: a reservation
    # settles with the usage the upstream reported), so each round is charged once. The
    # `tool-loop budget` tenant has 200 tokens a day on the token_budget model: the tool round
    # reports 100 tokens and the answer 10, so 110 are spent and 90 remain, and a short
    # request still fits (one reserves under 20). Had a round been charged twice, or a later
    # round been charged the earlier rounds again, nothing would be left for it.
    Scenario Outline: Each round of a tool loop is charged to the token budget once (<how>)
      Given I authenticate with the "tool-loop budget" token
      And I use the "token_budget" model
      And the request field "/max_tokens" is "1"
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 90 prompt and 10 completion tokens
      And the upstream answers with the text "Oslo is cold.", reporting 8 prompt and 2 completion tokens
      And the upstream answers with the text "Still cold.", reporting 5 prompt and 1 completion tokens
      When I <send>
      Then the response status is 200
      When I <send>
      Then the response status is 200
      And the upstream received 3 requests

      Examples:
        | how          | send                          |
        | not streamed | send a chat request           |
        | streamed     | send a streaming chat request |

    # Every upstream call of a loop is admitted as a request would be (SPEC §3: a budget
    # reserves the prompt estimate plus the output cap before the call and refuses when used +
    # reserved + this call exceed the limit). The `tool-loop budget` tenant has 200 tokens a day:
    # the tool round reports 100 tokens, and the second call reserves its max_tokens of 90 plus
    # a prompt of over 10, which does not fit beside them (nor beside the first call's own
    # reservation of over 90, were that still held). So the loop stops with
    # model_quota_exhausted before that call, rather than run up what the budget cannot cover.
    Scenario: A tool-loop call that no longer fits the token budget is refused before it is made
      Given I authenticate with the "tool-loop budget" token
      And I use the "token_budget" model
      And the request field "/max_tokens" is "90"
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 90 prompt and 10 completion tokens
      And the upstream answers with the text "Oslo is cold.", reporting 8 prompt and 2 completion tokens
      When I send a chat request
      Then the response is the error "model_quota_exhausted"
      And the upstream received 1 request

    # The same with the anti-loop synthesis call (SPEC §4): two identical tool rounds of 50
    # tokens each and a synthesis call of 60 are 160, so 40 of the 200 remain. A short request
    # (it reserves under 20) still fits and spends 6; then one that reserves over 50 (its
    # max_tokens alone) does not fit the 34 left. A budget charged too much refuses the first,
    # one charged too little admits the second.
    Scenario Outline: A synthesised tool-loop answer charges the token budget exactly its usage (<how>)
      Given I authenticate with the "tool-loop budget" token
      And I use the "token_budget" model
      And the request field "/max_tokens" is "1"
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 45 prompt and 5 completion tokens
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 45 prompt and 5 completion tokens
      And the upstream answers with the text "Oslo is cold, as the lookup said.", reporting 50 prompt and 10 completion tokens
      And the upstream answers with the text "Still cold.", reporting 5 prompt and 1 completion tokens
      When I <send>
      Then the response status is 200
      When I <send>
      Then the response status is 200
      Given the request field "/max_tokens" is "50"
      When I <send>
      Then the response is the error "model_quota_exhausted"
      And the upstream received 4 requests

      Examples:
        | how          | send                          |
        | not streamed | send a chat request           |
        | streamed     | send a streaming chat request |

    # An upstream that counts nothing ("usage" of zeros, as some self-hosted servers report
    # for every call) still gets its answer relayed whole, synthesis included: nothing to
    # charge is not a reason to fail.
    Scenario: A streamed synthesis after rounds that reported no tokens ends normally
      Given the request field "/stream_options" is '{"include_usage": true}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 0 prompt and 0 completion tokens
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}', reporting 0 prompt and 0 completion tokens
      And the upstream answers with the text "Oslo is cold, as the lookup said.", reporting 0 prompt and 0 completion tokens
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "Oslo is cold, as the lookup said."
      And the streamed usage has "total_tokens" = 0
      And the stream ends with the DONE marker
      And the upstream received 3 requests

  Rule: Caller-defined tools are the caller's business

    Scenario: A call to a caller-defined tool is returned untouched with finish_reason tool_calls
      Given the request defines the caller tool "get_stock_price"
      And the upstream answers with the tool call "get_stock_price" with arguments '{"symbol": "ACME"}'
      When I send a chat request
      Then the response status is 200
      And the body matches the schema "chat_completion.json"
      And the body field "/choices/0/finish_reason" is "tool_calls"
      And the body field "/choices/0/message/tool_calls/0/function/name" is "get_stock_price"
      And the body field "/choices/0/message/tool_calls/0/function/arguments" is '{"symbol": "ACME"}'
      And the body has no field "/dgx_code"
      And the upstream received 1 request
      And upstream request 1 offered the tool "get_stock_price"
      And upstream request 1 offered the tool "lookup_weather"

    # The same sentence of SPEC §4 when the caller's tool has the name of a server-side one:
    # the caller defined it in the request, so the call is the caller's to run, not the
    # gateway's, and no tool round happens.
    Scenario: A caller tool named like a server-side tool is the caller's
      Given the request defines the caller tool "lookup_weather"
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Oslo"}'
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/finish_reason" is "tool_calls"
      And the body field "/choices/0/message/tool_calls/0/function/name" is "lookup_weather"
      And the body field "/choices/0/message/tool_calls/0/function/arguments" is '{"city": "Oslo"}'
      And the upstream received 1 request

    Scenario: A caller-defined tool call after a server-side one is returned to the caller
      Given the request defines the caller tool "get_stock_price"
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the tool call "get_stock_price" with arguments '{"symbol": "ACME"}'
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/finish_reason" is "tool_calls"
      And the body field "/choices/0/message/tool_calls/0/function/name" is "get_stock_price"
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 2 requests

    # SPEC §4: the gateway runs the server-side tool and calls the model again with the
    # result as a "tool" message: what the tool answered is what the model reads next. The
    # embedded "status_http_tool" is an HTTP executor that answers 200 with
    # {"status": "all systems operational", "asked": <the arguments>}.
    Scenario: An HTTP server-side tool's answer is what the model reads next
      Given the upstream answers with the tool call "status_http_tool" with arguments '{"query": "cooling"}'
      And the upstream answers with the text "All systems are operational."
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" is "All systems are operational."
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 2 requests
      And upstream request 2 contains a tool result message
      And the tool result in upstream request 2 contains "all systems operational"
      And the tool result in upstream request 2 contains "cooling"

    # SPEC §5 bounds what a tool round holds (MAX_ANSWER_MEMORY_BYTES, 256 MiB by default), by
    # what it keeps: the assistant turn with its arguments, the tool's answer, the copy kept for
    # the conversation. An HTTP tool that answers 20 KiB of arguments with them makes a round of
    # some 60 KiB kept, far within any such budget: it is run, not refused.
    Scenario: A server-side tool round with 20 KiB of arguments is run
      Given the upstream answers with the tool call "status_http_tool" with 20 KiB of arguments
      And the upstream answers with the text "All systems are operational."
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" is "All systems are operational."
      And the upstream received 2 requests
      And the tool result in upstream request 2 contains "all systems operational"

  Rule: The caller never gets raw server-side tool calls or an empty answer

    Scenario: A model that keeps calling a tool even in the synthesis call does not leak it
      Given the upstream answers every request with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      When I send a chat request
      Then the caller got neither raw server-side tool calls nor an empty answer

    Scenario: A model that keeps calling a tool even in the synthesis call does not leak it into a stream
      Given the upstream answers every request with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      When I send a streaming chat request
      Then the response status is 200
      And the stream event "spass.tool-anti-loop" has the field "synth_called" = "true"
      And the caller got neither raw server-side tool calls nor an empty answer
      And the stream ends with the DONE marker

    Scenario: An empty synthesis answer is not passed on as an empty answer
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the text ""
      When I send a chat request
      Then the caller got neither raw server-side tool calls nor an empty answer

    # One answer holding a call to the caller's tool and one to a server-side tool: the
    # caller's call is returned as usual (SPEC §4), the server-side one never reaches the
    # caller, neither in the JSON answer nor as streamed deltas.
    Scenario: A caller tool call next to a server-side one in the same answer is returned without it
      Given the request defines the caller tool "get_stock_price"
      And the upstream answers with the tool calls "get_stock_price" with arguments '{"symbol": "ACME"}' and "lookup_weather" with arguments '{"city": "Berlin"}'
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/finish_reason" is "tool_calls"
      And the body field "/choices/0/message/tool_calls/0/function/name" is "get_stock_price"
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 1 request

    Scenario: A caller tool call next to a server-side one in the same streamed answer is streamed without it
      Given the request defines the caller tool "get_stock_price"
      And the upstream answers with the tool calls "get_stock_price" with arguments '{"symbol": "ACME"}' and "lookup_weather" with arguments '{"city": "Berlin"}'
      When I send a streaming chat request
      Then the response status is 200
      And the streamed tool call arguments are '{"symbol": "ACME"}'
      And the caller got neither raw server-side tool calls nor an empty answer
      And the stream ends with the DONE marker
      And the upstream received 1 request

    # Some models narrate after a tool call: text that follows a server-side call in the same
    # streamed round belongs to a tool round, not to the final answer, and must not make the
    # gateway relay that round's tool-call deltas.
    Scenario: Text after a server-side tool call in a streamed round does not leak the call
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}' followed by the text "Let me check the weather."
      And the upstream answers with the text "It is sunny in Berlin."
      When I send a streaming chat request
      Then the response status is 200
      And the caller got neither raw server-side tool calls nor an empty answer
      And the streamed content is "It is sunny in Berlin."
      And the stream ends with the DONE marker
      And the upstream received 2 requests

    # A tool round goes upstream again with the tool results, its text included, so the
    # gateway must hold that text, and what it holds from an upstream is bounded (SPEC §5:
    # "byte caps on every upstream and tool read"; UPSTREAM_MAX_BODY_BYTES is 262144 in the
    # embedded configuration). A round with more text than that is the upstream's failure,
    # upstream_error, streamed or not; it is never sent on cut short.
    Scenario: A tool round with more text than UPSTREAM_MAX_BODY_BYTES is upstream_error
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}' followed by 300 KiB of text
      And the upstream answers with the text "It is sunny in Berlin."
      When I send a chat request
      Then the response is the error "upstream_error"
      And the upstream received 1 request

    Scenario: A streamed tool round with more text than UPSTREAM_MAX_BODY_BYTES is upstream_error
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}' followed by 300 KiB of text
      And the upstream answers with the text "It is sunny in Berlin."
      When I send a streaming chat request
      Then the streaming request fails with "upstream_error"
      And the upstream received 1 request

  Rule: In a stream the synthesis is announced by a named event

    Scenario: The cap is announced by the spass.tool-cap event before the final content
      Given the upstream answers 10 times with distinct tool calls to "lookup_weather"
      And the upstream answers with the text "Summary of ten weather lookups."
      When I send a streaming chat request
      Then the response status is 200
      And the stream event "spass.tool-cap" has the field "code" = "tool_loop_max_iterations"
      And the stream event "spass.tool-cap" has the field "iterations" = "10"
      And the stream event "spass.tool-cap" has the field "synth_called" = "true"
      And the streamed content is "Summary of ten weather lookups."
      And the stream ends with the DONE marker
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 11 requests
      And the last upstream request had an empty "tools" list

    Scenario: The anti-loop synthesis is announced by the spass.tool-anti-loop event
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Berlin"}'
      And the upstream answers with the text "Berlin is sunny, as the lookup said."
      When I send a streaming chat request
      Then the response status is 200
      And the stream event "spass.tool-anti-loop" has the field "code" = "tool_loop_anti_loop_synthesised"
      And the stream event "spass.tool-anti-loop" has the field "synth_called" = "true"
      And the streamed content is "Berlin is sunny, as the lookup said."
      And the stream ends with the DONE marker
      And the caller got neither raw server-side tool calls nor an empty answer
      And the last upstream request had an empty "tools" list

  Rule: An answer that replaces an empty synthesis carries what the tools returned

    # SPEC §4: the synthesis answers from "a prompt holding the collected tool results", and a
    # caller never gets an empty answer. When the synthesis itself comes back empty, the only
    # answer with content the caller can use is those results: the weather tool's result names
    # the city it was asked about.
    Scenario: An empty synthesis answer is replaced by the collected tool results
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Reykjavik"}'
      And the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Reykjavik"}'
      And the upstream answers with the text ""
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" contains "Reykjavik"
      And the body field "/choices/0/finish_reason" is "stop"

    # The same rule without a synthesis call: the model ran a tool, then answered with nothing.
    Scenario: An empty final answer after a tool round is replaced by the tool's result
      Given the upstream answers with the tool call "lookup_weather" with arguments '{"city": "Trondheim"}'
      And the upstream answers with the text ""
      When I send a chat request
      Then the response status is 200
      And the body field "/choices/0/message/content" contains "Trondheim"
      And the upstream received 2 requests
