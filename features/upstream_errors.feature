@upstream_errors @dgx
Feature: Mapping of upstream failures
  Whatever the upstream personality (vLLM behind the "default" model, LiteLLM, OpenRouter), its
  failures reach the caller as catalog codes (SPEC §3 catalog, §7 mock personalities): an upstream
  4xx not covered by a more specific code is upstream_bad_request with the upstream's own status
  1:1 and its sanitised message; an upstream 5xx is upstream_error (502) with the sanitised
  upstream message inline; HTTP_TOTAL_TIMEOUT_SECS elapsing is upstream_timeout (504); a refused
  TCP/TLS connection is upstream_unavailable (503). "Sanitised" means no upstream API key, no
  upstream host name or URL, no provider name where the catalog is provider-agnostic (SPEC §3).

  Background:
    Given I authenticate with the "primary" token

  @needs-mock
  Scenario Outline: An upstream 4xx keeps its status as upstream_bad_request (<model>, <upstream>)
    Given I use the "<model>" model
    And the upstream answers with the error status <upstream> and message "the prompt was rejected by policy"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the response status is <upstream>
    And the error message contains "the prompt was rejected by policy"
    And the error message reveals no upstream details

    Examples:
      | model      | upstream |
      | default    | 400      |
      | default    | 422      |
      | litellm    | 400      |
      | litellm    | 404      |
      | openrouter | 400      |
      | openrouter | 422      |

  # Most clients send max_tokens. An upstream 4xx that is about something else (a policy, a
  # field) is still the upstream's refusal of the request, not max_tokens_below_minimum: only a
  # refusal that names the token limit is that code (max_tokens_floor.feature).
  @needs-mock
  Scenario Outline: An upstream 4xx about something else stays upstream_bad_request when max_tokens was sent (<model>)
    Given I use the "<model>" model
    And the request field "/max_tokens" is "64"
    And the upstream answers with the error status 400 and message "the prompt was rejected by policy"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the response status is 400
    And the error message contains "the prompt was rejected by policy"

    Examples:
      | model      |
      | default    |
      | litellm    |
      | openrouter |

  @needs-mock
  Scenario Outline: An upstream 5xx becomes upstream_error 502 (<model>, <upstream>)
    Given I use the "<model>" model
    And the upstream answers with the error status <upstream> and message "the model backend failed"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message contains "the model backend failed"
    And the error message reveals no upstream details

    Examples:
      | model      | upstream |
      | default    | 500      |
      | default    | 503      |
      | litellm    | 500      |
      | litellm    | 502      |
      | openrouter | 500      |
      | openrouter | 504      |

  @needs-mock
  Scenario Outline: Upstream hosts, URLs and keys never reach the caller (<model>, <upstream>)
    Given I use the "<model>" model
    And the upstream answers with the error status <upstream> and message "call to http://10.20.30.40:8000/v1/chat/completions with key sk-live-9f8e7d6c5b4a failed"
    When I send a chat request
    Then the response is the error "<code>"
    And the error message does not contain "10.20.30.40"
    And the error message does not contain "sk-live-9f8e7d6c5b4a"
    And the error message does not contain "http://"
    And the error message reveals no upstream details

    Examples:
      | model      | upstream | code                 |
      | default    | 500      | upstream_error       |
      | litellm    | 400      | upstream_bad_request |
      | openrouter | 503      | upstream_error       |

  @needs-mock
  Scenario Outline: A context-length error is the caller's to fix: context_length_exceeded 400 (<model>)
    Given I use the "<model>" model
    And the upstream answers with its context-length error
    When I send a chat request
    Then the response is the error "context_length_exceeded"
    And the response status is 400
    And the error message reveals no upstream details

    Examples:
      | model      |
      | default    |
      | litellm    |
      | openrouter |

  # LiteLLM raises its ContextWindowExceededError for providers whose sentence is not vLLM's:
  # for Anthropic, "prompt is too long" becomes
  # `ContextWindowExceededError(message="AnthropicError - {error_str}")`
  # (litellm/litellm_core_utils/exception_mapping_utils.py), relayed behind the same class
  # prefixes as L7. The class name alone says what it is; the caller can fix it.
  @needs-mock
  Scenario: LiteLLM's context-window class is context_length_exceeded whatever the provider's sentence
    Given I use the "litellm" model
    And the upstream answers with the error status 400 and message "litellm.ContextWindowExceededError: litellm.BadRequestError: AnthropicError - prompt is too long: 210000 tokens > 200000 maximum"
    When I send a chat request
    Then the response is the error "context_length_exceeded"
    And the response status is 400
    And the error message reveals no upstream details

  @needs-mock @needs-config @slow
  Scenario: An upstream that never answers is upstream_timeout after HTTP_TOTAL_TIMEOUT_SECS
    Given the upstream hangs
    When I send a chat request
    Then the response is the error "upstream_timeout"
    And the error message reveals no upstream details

  @needs-config
  Scenario: An upstream that refuses connections is upstream_unavailable
    Given I use the "unreachable" model
    When I send a chat request
    Then the response is the error "upstream_unavailable"
    And the error message reveals no upstream details

  # A 200 whose "choices" list is empty carries no answer at all: passing it on would hand the
  # caller an empty answer (SPEC §4 "never ... an empty answer"), so it is the upstream's
  # failure, upstream_error 502. Streamed, nothing but a usage chunk arrives before [DONE]:
  # the failure comes before the first chunk, so it is an ordinary JSON error (SPEC §5).
  @needs-mock
  Scenario: An upstream completion without choices is upstream_error, not an empty answer
    Given the upstream answers with a completion that has no choices
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message reveals no upstream details

  @needs-mock
  Scenario: An upstream stream without choices is upstream_error before any chunk
    Given the upstream answers with a completion that has no choices
    When I send a streaming chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the header "content-type" contains "application/json"

  # That stream still reported what the upstream spent: SPEC §3 settles a reservation with
  # the usage the upstream reported and charges an abandoned request "for what was sent and
  # streamed, never 0". The `tool-loop budget` tenant has 200 tokens a day on token_budget:
  # the empty stream reports 150 + 20, so 30 remain, and a request that reserves over 40 (its
  # max_tokens alone) no longer fits. Had the report been dropped, only the prompt estimate
  # (a few tokens) would be charged and the second request admitted.
  @needs-mock @needs-config
  Scenario: The usage an upstream stream reported before failing without a choice is charged
    Given I authenticate with the "tool-loop budget" token
    And I use the "token_budget" model
    And the request field "/max_tokens" is "1"
    And the upstream answers with a completion that has no choices, reporting 150 prompt and 20 completion tokens
    When I send a streaming chat request
    Then the response is the error "upstream_error"
    Given the request field "/max_tokens" is "40"
    When I send a streaming chat request
    Then the response is the error "model_quota_exhausted"
    And the upstream received 1 request

  # `choices` must be a list (OpenAI's chat.completion schema, features/schemas): an object in
  # its place is not a completion the caller can read, so it is the upstream's failure.
  @needs-mock
  Scenario: An upstream completion whose choices is not a list is upstream_error
    Given the upstream answers with the text "Hello." in a choices object, not a list
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message reveals no upstream details

  # Whichever upstream kind answered, the caller gets a chat.completion an OpenAI client
  # reads, with the members each upstream adds of its own (LiteLLM 1.106.2:
  # `provider_specific_fields` on the message and the choice). The OpenAI SDK's own type takes
  # `tool_calls` and `function_call` absent or null (openai-python
  # src/openai/types/chat/chat_completion_message.py: `Optional[...] = None`), so the schema
  # takes both too.
  @needs-mock
  Scenario Outline: A plain answer is a chat.completion whichever upstream kind served it (<model>)
    Given I use the "<model>" model
    And the upstream answers with the text "Hello."
    When I send a chat request
    Then the response status is 200
    And the body matches the schema "chat_completion.json"
    And the body names the requested model
    And the body field "/choices/0/message/content" is "Hello."
    And the body field "/choices/0/finish_reason" is "stop"

    Examples:
      | model      |
      | default    |
      | litellm    |
      | openrouter |

  @needs-mock
  Scenario Outline: A caller tool call is a chat.completion whichever upstream kind served it (<model>)
    Given I use the "<model>" model
    And the request defines the caller tool "get_stock_price"
    And the upstream answers with the tool call "get_stock_price" with arguments '{"symbol": "ACME"}'
    When I send a chat request
    Then the response status is 200
    And the body matches the schema "chat_completion.json"
    And the body field "/choices/0/finish_reason" is "tool_calls"
    And the body field "/choices/0/message/tool_calls/0/function/arguments" is '{"symbol": "ACME"}'

    Examples:
      | model      |
      | default    |
      | litellm    |
      | openrouter |

  # The caller's answer is a chat.completion, which names its model (schema: `model` is
  # required): an upstream that leaves `model` out still gives the caller one, the alias it
  # asked for, and nothing else of the answer changes.
  @needs-mock
  Scenario: An upstream completion without a model still names the requested model
    Given the upstream answers with the text "Hello." without a model field
    When I send a chat request
    Then the response status is 200
    And the body matches the schema "chat_completion.json"
    And the body names the requested model
    And the body field "/choices/0/message/content" is "Hello."

  @needs-mock
  Scenario: An upstream error carries the request id like every other response
    Given the upstream answers with the error status 500 and message "boom"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the header "x-request-id" is present

  # One secret shape per row, with ordinary words around it: the shape must go (SPEC §3
  # "Sanitised"), and the rest of the upstream message must stay inline, since that is what
  # the caller needs to understand the failure.
  @needs-mock
  Scenario Outline: Every secret shape is removed and the rest of the message is kept (<shape>)
    Given the upstream answers with the error status 500 and message "shard seven: <secret> rejected the batch"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message does not contain "<leak>"
    And the error message contains "shard seven:"
    And the error message contains "rejected the batch"
    And the error message reveals no upstream details

    Examples:
      | shape          | secret                                  | leak                  |
      | sk key         | sk-proj-4f3e2d1c0b9a8f7e                | 4f3e2d1c0b9a8f7e      |
      | quoted sk key  | 'sk-ant-0a1b2c3d4e5f'                   | 0a1b2c3d4e5f          |
      | http URL       | http://10.9.8.7:8000/v1/chat            | 10.9.8.7              |
      | https URL      | (https://inference.internal.example/v1) | inference.internal    |
      | upstream host  | 127.0.0.1                               | 127.0.0.1             |
      | provider vllm  | vLLM-engine                             | vLLM                  |
      | provider name  | OpenRouter                              | OpenRouter            |
      | provider SDK   | openai.APIError                         | openai                |
      | provider model | anthropic/claude                        | anthropic             |
      | provider proxy | LiteLLM                                 | LiteLLM               |
      | bracketed key  | [sk-proj-4f3e2d1c0b9a8f7e]              | 4f3e2d1c0b9a8f7e      |
      | bracketed host | [10.9.8.7]                              | 10.9.8.7              |
      | IPv6 URL       | http://[fd00::17]:8000/v1               | fd00::17              |

  # Whole: a short sentence is not shortened, so it carries no "…" (the mark of a message the
  # gateway had to cut).
  @needs-mock
  Scenario: An upstream message without secrets reaches the caller whole
    Given the upstream answers with the error status 503 and message "the batch queue is full, try again"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message contains "the batch queue is full, try again"
    And the error message does not contain "…"

  # Bounded: an upstream's own text is not relayed at any length (every buffer has a bound,
  # SPEC §5); a long one reaches the caller cut, with the "…" that marks a cut message.
  @needs-mock
  Scenario: A long upstream message reaches the caller shortened and marked as cut
    Given the upstream answers with the error status 503 and the message "the batch queue is full, try again" repeated 100 times
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message contains "the batch queue is full, try again"
    And the error message contains "…"

  # Upstreams name the model in their own sentences (vLLM's 404: "The model `<name>` does not
  # exist."). The caller asked for an alias and codes against it; the upstream's model name is
  # internal (SPEC §3 "Sanitised"), so the sentence names the alias instead, wherever the name
  # stands, and the rest of it stays. `{model}` is the name the upstream request carried.
  @needs-mock
  Scenario Outline: An upstream sentence that names its model names the caller's alias instead (<where>)
    Given the upstream answers with the error status 400 and message "<message>"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the response status is 400
    And the error message contains "<rest>"
    And the error message does not name the upstream model
    And the error message names the model alias I used

    Examples:
      | where          | message                                  | rest                      |
      | mid-sentence   | the model {model} rejected the prompt    | rejected the prompt       |
      | first word     | {model} rejected the prompt              | rejected the prompt       |
      | last word      | the prompt was rejected by {model}       | the prompt was rejected by |
      | in backquotes  | The model `{model}` cannot take tools.   | cannot take tools.        |

  # Only the upstream's model name itself becomes the alias: a longer name that begins with it
  # (`{model}-long`, `{model}2`) names another model, and writing the alias into it would make
  # up a name that exists nowhere (`<alias>-long`). The name ends where a name's characters end
  # (letters, digits, `-`, `_`, `.`, `/`, `:`), as in the outline above.
  @needs-mock
  Scenario Outline: A longer model name in an upstream sentence is not rewritten into the alias (<where>)
    Given the upstream answers with the error status 400 and message "busy, try (<name>)"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the error message contains "<rest>"
    And the error message does not hold "<before>" + the model alias I used + "<after>"

    Examples:
      | where          | name         | rest           | before | after  |
      | a dash suffix  | {model}-long | -long)         | (      | -long) |
      | a digit suffix | {model}2     | 2)             | (      | 2)     |
      | a path prefix  | org/{model}  | busy, try (org/ | /     | )      |

  # Only secrets and names go (the Feature text above): a leading label of the upstream's own
  # sentence, which looks like a word and a colon, is part of the message, not a vendor's
  # exception class to strip.
  @needs-mock
  Scenario: An upstream message that opens with a label reaches the caller whole
    Given the upstream answers with the error status 503 and message "Backlog: the batch queue is full, try again"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message contains "Backlog: the batch queue is full, try again"

  # LiteLLM relays an upstream's 400 behind its own prefixes, `litellm.BadRequestError:
  # OpenAIException - <the upstream's sentence>` (WIRE_FACTS L7; the mock's litellm personality
  # wraps the scripted sentence the same way). Only the prefixes are LiteLLM's: a " - " inside
  # the upstream's own sentence is part of it and stays, and nothing of LiteLLM's marker stands
  # before it.
  @needs-mock
  Scenario: A dash inside a LiteLLM-relayed sentence is kept
    Given I use the "litellm" model
    And the upstream answers with the error status 400 and message "temperature - must be between 0 and 2"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the error message contains "temperature - must be between 0 and 2"
    And the error message does not contain "Exception"
    And the error message does not contain " - temperature"

  # The same rule from the other side: `<Name>Exception - ` is LiteLLM's marker only behind
  # LiteLLM's class prefixes. An upstream that is not LiteLLM may begin its own sentence with
  # an exception name and a dash (a Java server: `IllegalArgumentException - …`); that is the
  # upstream's sentence, and it reaches the caller whole.
  @needs-mock
  Scenario: An exception name opening a sentence of an upstream that is not LiteLLM is kept
    Given the upstream answers with the error status 400 and message "IllegalArgumentException - temperature must be between 0 and 2"
    When I send a chat request
    Then the response is the error "upstream_bad_request"
    And the error message contains "IllegalArgumentException - temperature must be between 0 and 2"

  # Upstream sentences wrap names in any punctuation: backquotes (Markdown-style messages),
  # a sentence's full stop, angle brackets. The wrapping must not hide a shape (SPEC §3
  # "Sanitised"), and the words around it stay, as in the outline above.
  @needs-mock
  Scenario Outline: A secret shape wrapped in punctuation is removed as well (<shape>)
    Given the upstream answers with the error status 500 and message "shard seven: <secret> rejected the batch"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message does not contain "<leak>"
    And the error message contains "shard seven:"
    And the error message contains "rejected the batch"
    And the error message reveals no upstream details

    Examples:
      | shape                | secret                      | leak               |
      | backquoted sk key    | `sk-proj-4f3e2d1c0b9a8f7e`  | 4f3e2d1c0b9a8f7e   |
      | host ending sentence | inference.internal.example. | inference.internal |
      | host in angles       | <localhost:8000>            | localhost          |

  # Upstream logs and SDK errors print settings as `name=value` or `name:value` pairs
  # (`api_key=sk-…`, `host=…`, `base_url:…`): the label glued to a secret must not hide it
  # either (SPEC §3 "Sanitised": no key, no host name), and the label's own sentence stays.
  @needs-mock
  Scenario Outline: A secret shape glued to its label is removed as well (<shape>)
    Given the upstream answers with the error status 500 and message "shard seven: <secret> rejected the batch"
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message does not contain "<leak>"
    And the error message contains "shard seven:"
    And the error message contains "rejected the batch"
    And the error message reveals no upstream details

    Examples:
      | shape             | secret                              | leak               |
      | key after equals  | api_key=sk-proj-4f3e2d1c0b9a8f7e    | 4f3e2d1c0b9a8f7e   |
      | host after equals | host=inference.internal.example     | inference.internal |
      | host after colon  | upstream:inference.internal.example | inference.internal |
      | key in a call     | auth(sk-proj-4f3e2d1c0b9a8f7e)      | 4f3e2d1c0b9a8f7e   |

  # SPEC §5 bounds every upstream read: "byte caps on every upstream and tool read". The
  # embedded test configuration sets UPSTREAM_MAX_BODY_BYTES to 262144 (256 KiB). An answer of
  # exactly that many bytes is within the cap and reaches the caller whole, whether the upstream
  # declares its length or sends it in pieces with chunked framing (as a proxy that streams
  # bodies through does); one byte more is an answer the gateway will not hold, the upstream's
  # failure: upstream_error 502, never a cut answer passed off as whole.
  @needs-mock @needs-config
  Scenario Outline: An upstream answer of exactly UPSTREAM_MAX_BODY_BYTES is relayed whole (<model>, <delivery>)
    Given I use the "<model>" model
    And the upstream answers with a body of exactly 262144 bytes<delivery>
    When I send a chat request
    Then the response status is 200
    And the body field "/choices/0/message/content" is a string of at least 250000 characters

    Examples:
      | model      | delivery                                          |
      | default    |                                                   |
      | default    | , sent in 5 pieces without a Content-Length       |
      | litellm    |                                                   |
      | openrouter | , sent in 5 pieces without a Content-Length       |

  @needs-mock @needs-config
  Scenario Outline: An upstream answer one byte over UPSTREAM_MAX_BODY_BYTES is upstream_error (<model>, <delivery>)
    Given I use the "<model>" model
    And the upstream answers with a body of exactly 262145 bytes<delivery>
    When I send a chat request
    Then the response is the error "upstream_error"
    And the response status is 502
    And the error message reveals no upstream details

    Examples:
      | model      | delivery                                          |
      | default    |                                                   |
      | default    | , sent in 5 pieces without a Content-Length       |
      | litellm    | , sent in 5 pieces without a Content-Length       |
      | openrouter |                                                   |
