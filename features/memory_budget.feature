@memory_budget @needs-tight-memory @dgx
Feature: Request bodies and upstream answers are held within their memory budgets, parsed trees included
  A body under MAX_BODY_BYTES can still need many times its size once parsed: every JSON
  member becomes a map entry with its own key allocation, so a megabyte of tiny members is a
  tree of many megabytes. The gateway bounds the memory all bodies in flight hold together,
  raw and parsed (MAX_BODY_MEMORY_BYTES, README "Bounds"), and refuses a body that could never
  fit as body_too_large (413: the caller must send less), naming the bound, instead of building
  the tree. The same holds for what upstreams answer (MAX_ANSWER_MEMORY_BYTES): an answer
  within UPSTREAM_MAX_BODY_BYTES whose tree could never fit is the upstream's fault, an
  upstream_error 502 naming the bound, not a gateway that grows without limit. These scenarios
  run against the embedded gateway configured with budgets of 4 MiB (4194304 bytes; its
  MAX_BODY_BYTES is 1 MiB, its UPSTREAM_MAX_BODY_BYTES 1 MiB), one at a time, so that no other
  request holds any of them.

  Background:
    Given I authenticate with the "primary" token

  Scenario: A body of plain text just under MAX_BODY_BYTES fits a budget four times that size
    When I send a chat request padded to 1000000 bytes
    Then the response status is 200

  # About 180 KB of JSON; parsed, some 2 MB (16,000 map entries with their keys): within 4 MiB.
  Scenario: A body of 16,000 small members fits the budget
    Given the request field "/response_format" carries 16000 extra members
    When I send a chat request
    Then the response status is 200

  # About 990 KB of JSON, under MAX_BODY_BYTES: 90,000 map entries, each a key allocation and
  # a slot in a map node, well over 4 MiB once parsed.
  Scenario: A body under MAX_BODY_BYTES whose parsed tree cannot fit the budget is body_too_large
    Given the request field "/response_format" carries 90000 extra members
    When I send a chat request
    Then the response is the error "body_too_large"
    And the response status is 413
    And the error message contains "MAX_BODY_MEMORY_BYTES (4194304 bytes)"

  # README "Configuration", MAX_BODY_MEMORY_BYTES: a body holds 3 × its bytes while it
  # arrives, and one that does not fit now (other bodies hold the budget) is upstream_overloaded
  # 503 with Retry-After: 1, not body_too_large (alone it fits). 900,000 bytes arrived hold
  # 2,700,000 of the 4,194,304; a second body of 1,000,000 needs 3,000,000 while it arrives.
  # The gauge is the reference gateway's (GET /metrics, gateway_memory_held_bytes).
  Scenario: A body still arriving holds its share of the budget, and one that does not fit beside it is told to retry
    Given another caller has sent 900000 bytes of a chat request padded to 1000000 bytes
    Then the gateway's metrics show at least 2700000 bytes held of the "body" memory budget
    When I send a chat request padded to 1000000 bytes
    Then the response is the error "upstream_overloaded"
    And the response status is 503
    And the header "Retry-After" is "1"
    When that caller sends the rest of its request
    Then that caller's response status is 200
    When I send a chat request padded to 1000000 bytes
    Then the response status is 200

  Scenario: After a refused body the budget is whole again
    Given the request field "/response_format" carries 90000 extra members
    When I send a chat request
    Then the response is the error "body_too_large"
    Given the request field "/response_format" is '{"type": "text"}'
    When I send a chat request padded to 1000000 bytes
    Then the response status is 200

  @needs-mock
  Scenario: An upstream answer with 4,000 extra members fits the answer budget
    Given the upstream answers with the text "Hello." and 4000 extra members
    When I send a chat request
    Then the response status is 200
    And the body field "/choices/0/message/content" is "Hello."

  # About 990 KB, under UPSTREAM_MAX_BODY_BYTES: 90,000 map entries, well over 4 MiB parsed.
  @needs-mock
  Scenario: An upstream answer whose parsed tree cannot fit the answer budget is upstream_error
    Given the upstream answers with the text "Hello." and 90000 extra members
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message contains "MAX_ANSWER_MEMORY_BYTES (4194304 bytes)"

  # A streamed event is held parsed, or paid for as if it were, while it is relayed: its tree
  # counts, not only its bytes. 250,000 integers in one array are some 500 KB on the wire
  # (under SSE_MAX_LINE_BYTES and UPSTREAM_MAX_BODY_BYTES, 1 MiB each), but each element is a
  # tree node of its own (64 bytes at least), far more than the 4 MiB answer budget: the stream
  # ends with upstream_error. The same event with 40,000 of them, some 2.6 MB parsed, fits.
  @needs-mock
  Scenario: A streamed event whose parsed tree cannot fit the answer budget ends the stream with upstream_error
    Given the upstream streams 1 chunk, an event with 250000 samples and 1 more chunk
    When I send a streaming chat request
    Then the response status is 200
    And the stream ends with an error event "upstream_error"

  @needs-mock
  Scenario: A streamed event of 20,000 array elements fits the answer budget
    Given the upstream streams 1 chunk, an event with 20000 samples and 1 more chunk
    When I send a streaming chat request
    Then the response status is 200
    And the stream ends with the DONE marker

  # A streamed tool call is assembled while it is relayed (the gateway must know whole calls to
  # tell its own tools from the caller's); what it keeps is its text, 300 KiB here, under
  # UPSTREAM_MAX_BODY_BYTES (1 MiB) and far within the 4 MiB answer budget.
  @needs-mock
  Scenario: A streamed tool call with 300 KiB of arguments fits the answer budget
    Given the request defines the caller tool "get_stock_price"
    And the upstream streams the tool call "get_stock_price" with 300 KiB of arguments split into 3 parts
    When I send a streaming chat request
    Then the response status is 200
    And the streamed tool call arguments are the 300 KiB ones
    And the stream ends with the DONE marker

  # An answer without a Content-Length is paid for as it arrives, each byte once (2 × its bytes
  # while it is read, README MAX_ANSWER_MEMORY_BYTES): 700,000 bytes in pieces is some 1.4 MB
  # of the 4 MiB, however many reads it takes.
  @needs-mock
  Scenario: An upstream answer of 700,000 bytes without a Content-Length fits the answer budget
    Given the upstream answers with a body of exactly 700000 bytes, sent in 20 pieces without a Content-Length
    When I send a chat request
    Then the response status is 200

  # One such round keeps its arguments twice (about 480 KiB), a ninth of the 4 MiB: it fits, and
  # the loop goes on to the model's answer.
  @needs-mock
  Scenario: A tool round with 240 KiB of arguments fits the answer budget
    Given the upstream answers 1 times with distinct tool calls to "lookup_weather" with 240 KiB of arguments each
    And the upstream answers with the text "Sunny in City 1."
    When I send a chat request
    Then the response status is 200
    And the body field "/choices/0/message/content" is "Sunny in City 1."
    And the upstream received 2 requests

  # A tool loop keeps what each round adds: the model's tool call (its arguments) in the
  # conversation it sends again, and the collected result (name, arguments, answer) for the
  # synthesis. Rounds of 240 KiB of arguments keep at least 480 KiB each, so by its ninth round
  # the loop holds more than the 4 MiB answer budget: it is refused there, naming the bound,
  # rather than run on into the tenth round and the synthesis call.
  @needs-mock
  Scenario: A tool loop whose rounds would hold more than the answer budget is refused before its tenth round
    Given the upstream answers 10 times with distinct tool calls to "lookup_weather" with 240 KiB of arguments each
    And the upstream answers with the text "Summary of the lookups."
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message contains "MAX_ANSWER_MEMORY_BYTES (4194304 bytes)"
    And the upstream received at most 9 requests
