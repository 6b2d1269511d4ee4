//! The OpenAPI 3 document, generated from the handlers' annotations.

use axum::extract::State;
use axum::Json;
use serde_json::Value;

use crate::state::AppState;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::invoke::{ExecuteResponse, ProgramErrorBody};
use crate::requests::{CreateSession, ExecuteRequest};
use crate::routes::meta::LanguageInfo;

#[derive(OpenApi)]
#[openapi(
    info(title = "CodeBeaker", description = "Run (language, code, input) in pre-warmed, isolated containers."),
    paths(
        crate::routes::execute::execute,
        crate::routes::batch::batch,
        crate::routes::compat::execute,
        crate::routes::executions::submit,
        crate::routes::executions::get,
        crate::routes::executions::cancel,
        crate::routes::executions::list,
        crate::routes::executions::dead_letters,
        crate::routes::executions::webhook_secret,
        crate::routes::meta::languages,
        crate::routes::meta::healthz,
        crate::routes::meta::readyz,
        crate::routes::meta::metrics,
        crate::routes::sessions::create,
        crate::routes::sessions::list,
        crate::routes::sessions::get,
        crate::routes::sessions::command,
        crate::routes::sessions::close,
        openapi_json,
    ),
    components(schemas(crate::executions::ExecutionResource, CreateSession, ExecuteRequest, crate::requests::FileSpec, crate::batch::BatchRequest, crate::batch::BatchItem, crate::batch::ItemResult, crate::batch::ItemError, crate::batch::BatchSummary, crate::requests::RunMode, crate::routes::compat::SeedExecuteRequest, crate::routes::compat::SeedConfig, crate::routes::compat::SeedExecutionResult, ExecuteResponse, ProgramErrorBody, LanguageInfo, ErrorBody, ErrorDetail)),
    modifiers(&Security)
)]
/// The OpenAPI document of the HTTP API.
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document")))]
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    let base = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    Json(crate::openapi_refine::document(base, &state))
}
