@streaming @dgx
Feature: Streaming
  With "stream": true the gateway relays the upstream SSE ("data: {chat.completion.chunk}" …
  "data: [DONE]") without buffering the whole answer (SPEC §5). It sends its 200 header only once the
  upstream's first chunk has arrived, so any failure before that (upstream 4xx/5xx, timeout, refused
  connection, an error object inside a 200 stream) is an ordinary JSON error response with its real
  status. A failure after the 200 (upstream drop, stall past the timeout, malformed chunk, missing
  [DONE]) is sent as "event: error" with the error envelope as data, and then the stream ends: no
  silent close, no fake finish_reason. Tool-call arguments split across deltas are reassembled
  exactly. A client that goes away cancels the upstream request.

  Background:
    Given I authenticate with the "primary" token

  Rule: Chunks are relayed as they arrive

    @needs-mock
    Scenario: The upstream's chunks are relayed without buffering and end with [DONE]
      Given the upstream streams "The quick brown fox jumps over the lazy dog" in 5 chunks 200 ms apart
      When I send a streaming chat request
      Then the response status is 200
      And the header "content-type" contains "text/event-stream"
      And the streamed content is "The quick brown fox jumps over the lazy dog"
      And the stream ends with the DONE marker
      And the first chunk arrived at least 600 ms before the last

    @needs-mock
    Scenario: A requested usage chunk is relayed before [DONE]
      Given the request field "/stream_options" is '{"include_usage": true}'
      And the upstream streams "Hello there" in 2 chunks 10 ms apart
      When I send a streaming chat request
      Then the response status is 200
      And the stream contains a usage chunk
      And the stream ends with the DONE marker

    # The WHATWG event-stream rules (HTML Living Standard, "Interpreting an event stream")
    # read a byte stream: an upstream's TCP segments may cut an event anywhere, and one
    # event's data may span several `data:` lines that the reader joins with LF. vLLM and
    # OpenRouter send one line per event, but a proxy or a slow network cuts them.
    @needs-mock
    Scenario: Events the upstream's writes cut in pieces are relayed whole
      Given the upstream streams "Pieces of a stream, joined again" in 4 chunks, each event written in 3 pieces 2 ms apart
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "Pieces of a stream, joined again"
      And the stream ends with the DONE marker

    @needs-mock
    Scenario: An event whose data spans two data lines is relayed as one chunk
      Given the upstream streams "0123456789" repeated 1000 times in 1 chunk, each event's data on two lines
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "0123456789" repeated 1000 times
      And the stream ends with the DONE marker

    @needs-mock
    Scenario: A client that disconnects mid-stream cancels the upstream request
      Given the upstream streams "one two three four five six seven eight nine ten" in 10 chunks 200 ms apart
      When I send a streaming chat request and disconnect after 2 chunks
      Then the upstream saw the client disconnect

    # An event whose data is the empty object `{}` carries no model, no choices, no usage:
    # nothing for the gateway to change or count. Whether it is relayed or dropped, it must not
    # end the stream: every chunk after it reaches the caller.
    @needs-mock
    Scenario: An upstream event with nothing in it does not break the stream
      Given the upstream streams 2 chunks, the event "{}" and 2 more chunks
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "chunk-0 chunk-1 chunk-2 chunk-3 "

    # A long answer in a script of 3-byte characters: 300,000 bytes of text, more than a
    # gateway keeps of a message it only relays (UPSTREAM_MAX_BODY_BYTES is 262,144 in the
    # embedded configuration, which no multiple of 3 hits). Whatever a gateway keeps, and
    # wherever it cuts, the caller gets every character once and the stream ends.
    @needs-mock
    Scenario: A long answer in a multi-byte script is streamed whole
      Given the upstream streams "日本語のテキスト。" repeated 11112 times in 30 chunks 0 ms apart
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "日本語のテキスト。" repeated 11112 times
      And the stream ends with the DONE marker

  Rule: A failure before the first chunk is an ordinary JSON error with its real status

    Scenario: A validation error on a streaming request is a JSON error
      Given the request field "/temperature" is '"hot"'
      When I send a streaming chat request
      Then the response is the error "invalid_field"
      And the header "content-type" contains "application/json"
      And the error param is "/temperature"

    @needs-mock
    Scenario Outline: An upstream error status before the first chunk (<model>, <upstream>)
      Given I use the "<model>" model
      And the upstream answers with the error status <upstream> and message "stream refused"
      When I send a streaming chat request
      Then the response is the error "<code>"
      And the response status is <status>
      And the header "content-type" contains "application/json"

      Examples:
        | model      | upstream | status | code                 |
        | default    | 500      | 502    | upstream_error       |
        | litellm    | 503      | 502    | upstream_error       |
        | litellm    | 400      | 400    | upstream_bad_request |
        | openrouter | 422      | 422    | upstream_bad_request |

    @needs-mock
    Scenario Outline: An upstream quota or context error before the first chunk (<model>, <kind>)
      Given I use the "<model>" model
      And the upstream answers with its <kind> error
      When I send a streaming chat request
      Then the response is the error "<code>"
      And the header "content-type" contains "application/json"

      Examples:
        | model      | kind             | code                  |
        | litellm    | quota-exhaustion | model_quota_exhausted |
        | default    | context-length   | context_length_exceeded |

    @needs-mock
    Scenario Outline: An error object inside a 200 stream is an ordinary JSON error (<model>, <upstream>)
      Given I use the "<model>" model
      And the upstream streams an error object with status <upstream>
      When I send a streaming chat request
      Then the response is the error "<code>"
      And the response status is <status>
      And the header "content-type" contains "application/json"

      Examples:
        | model   | upstream | status | code                 |
        | default | 500      | 502    | upstream_error       |
        | default | 400      | 400    | upstream_bad_request |
        | litellm | 500      | 502    | upstream_error       |

    @needs-mock @needs-config @slow
    Scenario: An upstream that never sends a first chunk is a JSON upstream_timeout
      Given the upstream hangs
      When I send a streaming chat request
      Then the response is the error "upstream_timeout"
      And the header "content-type" contains "application/json"

    @needs-config
    Scenario: An unreachable upstream on a streaming request is a JSON upstream_unavailable
      Given I use the "unreachable" model
      When I send a streaming chat request
      Then the response is the error "upstream_unavailable"
      And the header "content-type" contains "application/json"

  Rule: A failure after the first chunk ends the stream with an error event

    # An answer is a chunk with a choice in it. Events with none (`{}` here) and `[DONE]` are a
    # stream that answered nothing: the upstream's failure, upstream_error, like an upstream
    # that sends only its usage report (upstream_errors.feature), never a 200 with no answer.
    @needs-mock
    Scenario: A stream of events without any choice is upstream_error
      Given the upstream streams only the event "{}", 2 times
      When I send a streaming chat request
      Then the streaming request fails with "upstream_error"

    @needs-mock
    Scenario Outline: The upstream <failure> after two chunks
      Given the upstream streams 2 chunks and then "<failure>"
      When I send a streaming chat request
      Then the response status is 200
      And the stream ends with an error event "<code>"

      Examples:
        | failure                      | code           |
        | drops the connection         | upstream_error |
        | sends a malformed chunk      | upstream_error |
        | ends without the DONE marker | upstream_error |

      @needs-config @slow
      Examples: stalls past HTTP_TOTAL_TIMEOUT_SECS
        | failure | code             |
        | stalls  | upstream_timeout |

    # Every event of a chat stream is a chat.completion.chunk, a JSON object (OpenAI's
    # streaming reference; SPEC §5 "5xx/garbage is upstream_error"). An event that is valid JSON
    # but no object, of any kind, is the upstream's garbage: the stream ends with an error
    # event, never with that value relayed to the caller as if it were a chunk.
    @needs-mock
    Scenario Outline: An event that is JSON but not an object (<kind>) ends the stream with upstream_error
      Given the upstream streams 2 chunks, the event '<event>' and 1 more chunk
      When I send a streaming chat request
      Then the response status is 200
      And the stream ends with an error event "upstream_error"

      Examples:
        | kind              | event      |
        | null              | null       |
        | a boolean         | true       |
        | an integer        | 42         |
        | a negative number | -3         |
        | a fraction        | 2.5        |
        | a string          | "text"     |
        | an array          | [{"a": 1}] |

    # The same for a string with an escape in it (here `\u00e9`), which a JSON reader decodes
    # on its own way.
    @needs-mock
    Scenario: An event that is an escaped JSON string ends the stream with upstream_error
      Given the upstream streams 2 chunks, the event '"caf\u00e9"' and 1 more chunk
      When I send a streaming chat request
      Then the response status is 200
      And the stream ends with an error event "upstream_error"

    # A chunk names the alias the caller asked for, never the upstream's own name for it
    # (SPEC §1 aliases; the non-streamed answer: "the body names the requested model"), also
    # when the upstream spells the key with an escape: to any JSON reader `"mod\u0065l"` is
    # `"model"`, so the caller would read the upstream's name there.
    @needs-mock
    Scenario: A chunk whose model key is spelled with an escape still names the requested model
      Given the upstream streams 2 chunks, the event '{"id": "chatcmpl-esc", "object": "chat.completion.chunk", "created": 1, "mod\u0065l": "upstream-internal-name", "choices": [{"index": 0, "delta": {"content": "escaped "}, "finish_reason": null}]}' and 1 more chunk
      When I send a streaming chat request
      Then the response status is 200
      And the stream ends with the DONE marker
      And every streamed chunk names the requested model

    # The same for a chunk that names its model twice. JSON leaves a repeated name to the
    # reader (RFC 8259 §4: names "SHOULD be unique", and readers differ: some keep the first,
    # some the last), so the caller must find the alias whichever it keeps, and neither of the
    # upstream's names anywhere in the event.
    @needs-mock
    Scenario: A chunk that names its model twice names only the requested model
      Given the upstream streams 2 chunks, the event '{"id": "chatcmpl-dup", "object": "chat.completion.chunk", "created": 1, "model": "upstream-first-name", "model": "upstream-second-name", "choices": [{"index": 0, "delta": {"content": "twice "}, "finish_reason": null}]}' and 1 more chunk
      When I send a streaming chat request
      Then the response status is 200
      And the stream ends with the DONE marker
      And every streamed chunk names the requested model
      And no streamed event holds "upstream-first-name"
      And no streamed event holds "upstream-second-name"

    # The same where the two names come last, behind eight other members (chunks carry more
    # than the usual six or seven: `system_fingerprint`, `service_tier`, vendor extensions).
    @needs-mock
    Scenario: A chunk that names its model twice after many other members names only the requested model
      Given the upstream streams 2 chunks, the event '{"id": "chatcmpl-dup", "object": "chat.completion.chunk", "created": 1, "choices": [{"index": 0, "delta": {"content": "twice "}, "finish_reason": null}], "system_fingerprint": "fp_1", "service_tier": "default", "x_vendor_a": 1, "x_vendor_b": 2, "model": "upstream-first-name", "model": "upstream-second-name"}' and 1 more chunk
      When I send a streaming chat request
      Then the response status is 200
      And the stream ends with the DONE marker
      And every streamed chunk names the requested model
      And no streamed event holds "upstream-first-name"
      And no streamed event holds "upstream-second-name"

  Rule: Tool-call arguments split across deltas are reassembled exactly

    @needs-mock
    Scenario Outline: A caller-defined tool call split into <parts> deltas
      Given the request defines the caller tool "get_stock_price"
      And the upstream streams the tool call "get_stock_price" with arguments '<arguments>' split into <parts> parts
      When I send a streaming chat request
      Then the response status is 200
      And the streamed tool call arguments are '<arguments>'
      And the stream ends with the DONE marker

      Examples:
        | arguments                                                  | parts |
        | {"symbol": "ACME", "exchange": "NYSE"}                     | 4     |
        | {}                                                         | 2     |
        | {"filters": {"days": [1, 2, 3], "hourly": true}, "n": null} | 7     |

    @needs-mock @needs-config @needs-server-tools
    Scenario: A split server-side tool call is executed and the answer is streamed
      Given the upstream streams the tool call "lookup_weather" with arguments '{"city": "Berlin"}' split into 3 parts
      And the upstream answers with the text "Sunny in Berlin."
      When I send a streaming chat request
      Then the response status is 200
      And the streamed content is "Sunny in Berlin."
      And the stream ends with the DONE marker
      And the caller got neither raw server-side tool calls nor an empty answer
      And the upstream received 2 requests
      And upstream request 2 contains a tool result message
