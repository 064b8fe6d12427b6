//! OpenAPI 3.1 document, generated from the route table below, the request/response types
//! and the error catalog (each route lists the catalog codes it can answer with).

use std::collections::BTreeMap;

use serde_json::json;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref,
    Required, ResponseBuilder,
};
use utoipa::{PartialSchema, ToSchema};

use crate::catalog::{Code, ErrorType, ENTRIES};

/// A chat message (OpenAI format). `content` is a string or an array of parts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChatMessage {
    /// system, developer, user, assistant or tool
    role: String,
    content: Option<serde_json::Value>,
    name: Option<String>,
    tool_call_id: Option<String>,
    tool_calls: Option<Vec<serde_json::Value>>,
}

/// `POST /v1/chat/completions` body (OpenAI-compatible; unknown fields are forwarded).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChatCompletionRequest {
    /// A model alias from /v1/models.
    model: String,
    messages: Vec<ChatMessage>,
    /// 0..=2
    temperature: Option<f64>,
    /// 0..=1
    top_p: Option<f64>,
    /// >= 1; raised silently to the model's `min_max_tokens` (see `spass-applied`).
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<serde_json::Value>,
    tools: Option<Vec<serde_json::Value>>,
    tool_choice: Option<serde_json::Value>,
    stop: Option<serde_json::Value>,
    n: Option<u32>,
}

/// `POST /c1/chat/completions` body: the /v1 body plus conversation fields.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct C1ChatCompletionRequest {
    #[schema(inline)]
    #[serde(flatten)]
    chat: ChatCompletionRequest,
    /// The caller's end-user id (1-128 printable characters).
    user_id: String,
    /// Continue this conversation; omit to start a new one.
    conversation_id: Option<String>,
}

/// An OpenAI `chat.completion`; `dgx_code` is present when the tool loop synthesised.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ChatCompletion {
    id: String,
    object: String,
    created: u64,
    model: String,
    choices: Vec<serde_json::Value>,
    usage: Option<serde_json::Value>,
    dgx_code: Option<String>,
    conversation_id: Option<String>,
}

/// One stored conversation, without its messages.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ConversationSummary {
    id: String,
    /// The model alias of the conversation's first exchange.
    model: String,
    /// Unix seconds.
    created_at: i64,
    /// Unix seconds; the list is ordered by it, newest first.
    updated_at: i64,
    message_count: i64,
}

/// `GET /c1/conversations`: one page, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ConversationList {
    /// Always `list`.
    object: String,
    data: Vec<ConversationSummary>,
    /// Another page follows: ask again with `after` = `last_id`.
    has_more: bool,
    /// The id of the page's last entry; null on an empty page.
    last_id: Option<String>,
}

/// What the OpenAPI document says about one route; the table is `edge::routes::ROUTES`.
pub(crate) struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: bool,
    pub ok: (u16, &'static str, Option<&'static str>),
    pub request: Option<&'static str>,
    /// Groups of catalog codes the route can answer with.
    pub codes: &'static [&'static [Code]],
    pub user_id_query: bool,
    /// A cursor-paged list: `limit` and `after` in the query, `has_more` and `last_id` in the
    /// answer (`routes::conversations::page` is what reads them).
    pub paged: bool,
}

impl RouteDoc {
    pub(crate) fn all_codes(&self) -> impl Iterator<Item = Code> + '_ {
        self.codes.iter().flat_map(|g| g.iter().copied())
    }
}

fn of_type(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::Type(t))
}

fn nullable_string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::String, Type::Null]))
}

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> Schema {
    of_type(Type::String).enum_values(Some(values)).into()
}

fn error_envelope_schema() -> Schema {
    let inner = ObjectBuilder::new()
        .property(
            "type",
            string_enum(ErrorType::ALL.iter().map(|t| t.as_str())),
        )
        .property("code", string_enum(ENTRIES.iter().map(|e| e.code)))
        .property("message", of_type(Type::String))
        .property(
            "param",
            nullable_string().description(Some(
                "JSON pointer into the request, or a header/query locator",
            )),
        )
        .required("type")
        .required("code")
        .required("message")
        .required("param")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    ObjectBuilder::new()
        .property("error", inner)
        .property("dgx_code", of_type(Type::String))
        .property(
            "available_fallbacks",
            ArrayBuilder::new().items(of_type(Type::String)),
        )
        .required("error")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some("The error envelope of every error response"))
        .into()
}

fn catalog_schema() -> Schema {
    let entry = ObjectBuilder::new()
        .property("code", of_type(Type::String))
        .property("type", of_type(Type::String))
        .property("http_status", of_type(Type::Integer))
        .property("title", of_type(Type::String))
        .property("description", of_type(Type::String))
        .property("remediation", of_type(Type::String))
        .property("typical_param", nullable_string())
        .property("retryable", of_type(Type::Boolean))
        .property("docs_url", of_type(Type::String));
    ObjectBuilder::new()
        .property("entries", ArrayBuilder::new().items(entry))
        .required("entries")
        .into()
}

pub(crate) fn document<'a>(routes: impl IntoIterator<Item = &'a RouteDoc>) -> OpenApi {
    let mut paths = PathsBuilder::new();
    for r in routes {
        let mut op = OperationBuilder::new()
            .summary(Some(r.summary))
            .operation_id(Some(format!(
                "{}{}",
                r.method,
                r.path.replace(['/', '{', '}', '.'], "_")
            )));
        if r.path.contains("{id}") {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("id")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(String::schema())),
            );
        }
        if r.user_id_query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("user_id")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .schema(Some(String::schema())),
            );
        }
        if r.paged {
            op = op
                .parameter(
                    ParameterBuilder::new()
                        .name("limit")
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(
                            "page size, 1-1000 (default 100); anything else is `invalid_field` `query.limit`",
                        ))
                        .schema(Some(
                            of_type(Type::Integer)
                                .minimum(Some(1))
                                .maximum(Some(1000))
                                .default(Some(json!(100))),
                        )),
                )
                .parameter(
                    ParameterBuilder::new()
                        .name("after")
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(
                            "the `last_id` of the previous page; not an id this gateway issues is `invalid_field` `query.after`; an id not in the list gives an empty page",
                        ))
                        .schema(Some(String::schema())),
                );
        }
        if let Some(req) = r.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name(req)))
                            .build(),
                    )
                    .build(),
            ));
        }
        let mut ok = ResponseBuilder::new().description(r.ok.1);
        if let Some(schema) = r.ok.2 {
            ok = ok.content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(schema)))
                    .build(),
            );
        }
        op = op.response(r.ok.0.to_string(), ok.build());
        let mut by_status: BTreeMap<u16, Vec<&'static str>> = BTreeMap::new();
        for c in r.all_codes().chain(std::iter::once(Code::RouteNotFound)) {
            let e = c.entry();
            if e.http_status >= 400 {
                by_status.entry(e.http_status).or_default().push(e.code);
            }
        }
        if r.all_codes().any(|c| c == Code::UpstreamBadRequest) {
            by_status
                .entry(422)
                .or_default()
                .push("upstream_bad_request");
        }
        for (status, codes) in by_status {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .example(Some(json!({"error": {"type": Code::from_code(codes[0]).map(|c| c.entry().error_type.as_str()), "code": codes[0], "message": "…", "param": null}})))
                .build();
            let mut resp = ResponseBuilder::new()
                .description(format!("Error codes: {}", codes.join(", ")))
                .content("application/json", content);
            if status == 429 {
                resp = resp.header(
                    "Retry-After",
                    utoipa::openapi::HeaderBuilder::new()
                        .schema(i64::schema())
                        .description(Some("whole seconds"))
                        .build(),
                );
            }
            op = op.response(status.to_string(), resp.build());
        }
        if r.auth {
            op = op.security(utoipa::openapi::security::SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            ));
        }
        let method = match r.method {
            "post" => HttpMethod::Post,
            "delete" => HttpMethod::Delete,
            _ => HttpMethod::Get,
        };
        paths = paths.path(r.path, PathItem::new(method, op.build()));
    }
    let components = ComponentsBuilder::new()
        .schema("ErrorEnvelope", error_envelope_schema())
        .schema("Catalog", catalog_schema())
        .schema_from::<ChatMessage>()
        .schema_from::<ChatCompletionRequest>()
        .schema_from::<C1ChatCompletionRequest>()
        .schema_from::<ChatCompletion>()
        .schema_from::<ConversationSummary>()
        .schema_from::<ConversationList>()
        .security_scheme(
            "bearer",
            utoipa::openapi::security::SecurityScheme::Http(utoipa::openapi::security::Http::new(
                utoipa::openapi::security::HttpAuthScheme::Bearer,
            )),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("DGX reference LLM chat gateway")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("OpenAI-compatible chat gateway implementing the DGX error catalog (cut 2.32). Every error answers with the envelope `ErrorEnvelope`; see /errors and /docs/errors.")),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The document as JSON text.
pub(crate) fn json<'a>(routes: impl IntoIterator<Item = &'a RouteDoc>) -> String {
    document(routes).to_json().unwrap_or_else(|_| "{}".into())
}
