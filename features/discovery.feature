@discovery @dgx
Feature: Discovery: catalog, docs, OpenAPI, models and info
  The error catalog lives in ONE place in the gateway; GET /errors (no auth) serves it as
  {"entries": [...]} with the first entry missing_authorization, each entry carrying code, type,
  http_status, title, description, remediation, typical_param, retryable and docs_url
  "/docs/errors#<code>"; GET /docs/errors is an HTML page with the stable anchor "#<code>" for every
  code; GET /openapi.json is OpenAPI 3.1 of every route, request and error response (SPEC §2, §3,
  seed 000 "Machine-readable catalog"). GET /v1/models lists, in OpenAI list format, the aliases the
  token may use; GET /v1/info adds each model's capabilities and constraints and the gateway's
  limits (SPEC §2). Unknown paths, and unknown methods on known paths, are route_not_found (404),
  checked before authentication (SPEC §3 check order).

  Background:
    Given I authenticate with the "primary" token

  Rule: The catalog is served identically everywhere

    Scenario: /errors serves the whole catalog without a token
      Given no Authorization header
      When I GET "/errors"
      Then the response status is 200
      And the body matches the schema "catalog.json"
      And the body field "/entries/0/code" is "missing_authorization"
      And the catalog has 34 entries

    Scenario Outline: <code> is in /errors, /docs/errors and /openapi.json
      Given no Authorization header
      When I GET "/errors"
      Then the catalog entry "<code>" field "http_status" is "<status>"
      And the catalog entry "<code>" field "type" is "<type>"
      And the catalog entry "<code>" field "docs_url" is "/docs/errors#<code>"
      When I GET "/docs/errors"
      Then the page has the anchor "<code>"
      When I GET "/openapi.json"
      Then the OpenAPI document mentions the error code "<code>"

      Examples:
        | code                             | status | type                  |
        | missing_authorization            | 401    | authentication_error  |
        | invalid_authorization            | 401    | authentication_error  |
        | rate_limit_exceeded              | 429    | rate_limit_error      |
        | model_quota_exhausted            | 429    | rate_limit_error      |
        | openrouter_daily_quota_exhausted | 429    | rate_limit_error      |
        | tool_loop_max_iterations         | 200    | tool_loop_status      |
        | tool_loop_anti_loop_synthesised  | 200    | tool_loop_status      |
        | body_too_large                   | 413    | invalid_request_error |
        | invalid_json                     | 400    | invalid_request_error |
        | missing_field                    | 400    | invalid_request_error |
        | invalid_field                    | 400    | invalid_request_error |
        | model_not_in_allowlist           | 400    | invalid_request_error |
        | max_tokens_below_minimum         | 400    | invalid_request_error |
        | image_url_not_supported          | 400    | invalid_request_error |
        | image_decode_error               | 400    | invalid_request_error |
        | image_base64_invalid             | 400    | invalid_request_error |
        | tool_call_arguments_invalid      | 400    | invalid_request_error |
        | upstream_bad_request             | 400    | invalid_request_error |
        | conversation_not_found           | 404    | not_found_error       |
        | route_not_found                  | 404    | not_found_error       |
        | upstream_error                   | 502    | upstream_error        |
        | upstream_timeout                 | 504    | upstream_error        |
        | upstream_unavailable             | 503    | upstream_error        |
        | internal_error                   | 500    | internal_error        |
        | storage_error                    | 500    | internal_error        |
        | key_expired                      | 401    | authentication_error  |
        | tenant_disabled                  | 403    | permission_error      |
        | concurrency_limit_exceeded       | 429    | rate_limit_error      |
        | tenant_rate_limit_exceeded       | 429    | rate_limit_error      |
        | model_does_not_support_tools     | 400    | invalid_request_error |
        | model_does_not_support_vision    | 400    | invalid_request_error |
        | context_length_exceeded          | 400    | invalid_request_error |
        | model_loading                    | 503    | upstream_error        |
        | upstream_overloaded              | 503    | upstream_error        |

    Scenario Outline: The catalog says whether retrying <code> can help
      When I GET "/errors"
      Then the catalog entry "<code>" field "retryable" is "<retryable>"

      Examples:
        | code                             | retryable |
        | rate_limit_exceeded              | true      |
        | model_quota_exhausted            | true      |
        | openrouter_daily_quota_exhausted | true      |
        | upstream_timeout                 | true      |
        | upstream_unavailable             | true      |
        | internal_error                   | true      |
        | concurrency_limit_exceeded       | true      |
        | tenant_rate_limit_exceeded       | true      |
        | model_loading                    | true      |
        | upstream_overloaded              | true      |
        | key_expired                      | false     |
        | tenant_disabled                  | false     |
        | context_length_exceeded          | false     |
        | missing_authorization            | false     |
        | invalid_authorization            | false     |
        | body_too_large                   | false     |
        | invalid_json                     | false     |
        | missing_field                    | false     |
        | invalid_field                    | false     |
        | model_not_in_allowlist           | false     |
        | image_url_not_supported          | false     |
        | image_decode_error               | false     |
        | image_base64_invalid             | false     |
        | tool_call_arguments_invalid      | false     |
        | upstream_bad_request             | false     |
        | route_not_found                  | false     |
        | conversation_not_found           | false     |

    Scenario Outline: The catalog names the typical param of <code>
      When I GET "/errors"
      Then the catalog entry "<code>" field "typical_param" is "<param>"

      Examples:
        | code                     | param                 |
        | missing_authorization    | headers.authorization |
        | max_tokens_below_minimum | /max_tokens           |

    Scenario: /docs/errors is an HTML page
      Given no Authorization header
      When I GET "/docs/errors"
      Then the response status is 200
      And the header "content-type" contains "text/html"

  Rule: /openapi.json describes every route

    Scenario: /openapi.json is an OpenAPI 3.1 document served without a token
      Given no Authorization header
      When I GET "/openapi.json"
      Then the response status is 200
      And the body field "/openapi" contains "3.1"

    Scenario Outline: /openapi.json describes <method> <path>
      When I GET "/openapi.json"
      Then the OpenAPI document describes <method> "<path>"

      Examples:
        | method | path                    |
        | post   | /v1/chat/completions    |
        | get    | /v1/models              |
        | get    | /v1/info                |
        | post   | /c1/chat/completions    |
        | get    | /c1/conversations       |
        | get    | /c1/conversations/{id}  |
        | delete | /c1/conversations/{id}  |
        | get    | /errors                 |
        | get    | /docs/errors            |
        | get    | /openapi.json           |
        | get    | /healthz                |
        | get    | /readyz                 |

  Rule: /v1/models and /v1/info describe what this token may use

    Scenario: /v1/models is an OpenAI model list
      When I GET "/v1/models"
      Then the response status is 200
      And the body field "/object" is "list"
      And the body field "/data/0/object" is "model"
      And the listed models include the "default" model

    @needs-config
    Scenario Outline: /v1/models and /v1/info list exactly the aliases the tenant may use (<path>)
      When I GET "<path>"
      Then the response status is 200
      And the listed models include the "default" model
      And the listed models include the "litellm" model
      And the listed models include the "openrouter" model
      And the listed models include the "reasoning" model
      And the listed models include the "vision_url" model
      And the listed models do not include the "forbidden" model

      Examples:
        | path       |
        | /v1/models |
        | /v1/info   |

    @needs-config
    Scenario Outline: /v1/info gives the <model> model's constraint <field>
      When I GET "/v1/info"
      Then the info for the "<model>" model has "<field>" = "<value>"

      Examples:
        | model      | field                          | value |
        | default    | /constraints/min_max_tokens    | 16    |
        | default    | /constraints/accepts_image_url | false |
        | reasoning  | /constraints/min_max_tokens    | 200   |
        | vision_url | /constraints/accepts_image_url | true  |

    @needs-config
    Scenario: /v1/info gives the gateway's limits
      When I GET "/v1/info"
      Then the response status is 200
      And the body field "/max_body_bytes" is "1048576"
      And the body field "/max_tool_iterations" is "10"

    Scenario: /v1/info is not public
      Given no Authorization header
      When I GET "/v1/info"
      Then the response is the error "missing_authorization"

  Rule: Unknown routes are route_not_found

    Scenario Outline: <method> <path> is route_not_found
      When I send <method> "<path>"
      Then the response is the error "route_not_found"

      Examples: unknown path
        | method | path                  |
        | GET    | /v1/nope              |
        | POST   | /v2/chat/completions  |
        | GET    | /v1/chat/completion   |
        | GET    | /c1/nope              |

      Examples: unknown method on a known path
        | method | path                                  |
        | GET    | /v1/chat/completions                  |
        | DELETE | /v1/chat/completions                  |
        | PUT    | /v1/models                            |
        | POST   | /errors                               |
        | PATCH  | /c1/conversations/conv-1?user_id=alice |

    Scenario: The route is checked before authentication
      Given no Authorization header
      When I GET "/v1/does-not-exist"
      Then the response is the error "route_not_found"
