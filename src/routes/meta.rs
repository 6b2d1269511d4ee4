//! Health, readiness and the language list.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use codebeaker_pool::PoolStatus;
use codebeaker_proto::Language;
use serde::Serialize;

use crate::state::AppState;

/// One language as `GET /v1/languages` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LanguageInfo {
    #[schema(value_type = String)]
    pub name: Language,
    /// The display name (`C#`, `C++`).
    pub title: String,
    /// Other names a request may use for it.
    pub aliases: Vec<String>,
    /// The program's file name in the workspace (its extension is the language's).
    pub file: String,
    /// Whether a program is compiled first (its build is cached by content).
    pub compiled: bool,
    /// Whether `"isolation": "program"` (resident instances) is offered, in edge mode
    /// and in plain mode.
    pub resident: ResidentForms,
    /// A caveat for users (for example: TypeScript's types are not checked).
    pub note: Option<String>,
    pub image: String,
    /// False when the image is not built on the engine: calls get 503
    /// `language_unavailable` naming the command that builds it.
    pub available: bool,
    /// The toolchain version the agents reported (null until a container started).
    pub toolchain: Option<String>,
    #[schema(value_type = Object)]
    pub pool: PoolStatus,
    /// The language's package variants: images with allow-listed packages, chosen by a
    /// request's `packages`.
    pub variants: Vec<VariantInfo>,
}

/// Which run modes a language's resident instances support.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ResidentForms {
    pub edge: bool,
    pub plain: bool,
}

/// One package variant as `GET /v1/languages` lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantInfo {
    pub name: String,
    pub image: String,
    /// False when the variant is configured but its image is not built
    /// (`make images VARIANTS=<name>`); its packages are then unknown.
    pub available: bool,
    /// Package name to locked version.
    pub packages: std::collections::BTreeMap<String, String>,
    #[schema(value_type = Object)]
    pub pool: Option<PoolStatus>,
}

#[utoipa::path(get, path = "/v1/languages",
    responses((status = 200, body = Vec<LanguageInfo>), (status = 401, body = crate::error::ErrorBody)),
    security(("api_key" = []), ("bearer" = [])))]
/// `GET /v1/languages`: each language, its image, toolchain and pool state.
pub async fn languages(State(state): State<AppState>) -> Json<Vec<LanguageInfo>> {
    // An image built since the last look is found now (each at most every few seconds).
    state.pools.refresh_images().await;
    let (variants, languages): (Vec<PoolStatus>, Vec<PoolStatus>) = state
        .pools
        .status()
        .into_iter()
        .partition(|p| p.packages.is_some());
    let unbuilt = state.pools.unbuilt_variants();
    Json(
        languages
            .into_iter()
            .map(|p| {
                let built = variants
                    .iter()
                    .filter(|v| v.language == p.language)
                    .map(|v| VariantInfo {
                        name: v.name.clone(),
                        image: v.image.clone(),
                        available: true,
                        packages: v.packages.clone().unwrap_or_default(),
                        pool: Some(v.clone()),
                    });
                let missing =
                    unbuilt
                        .iter()
                        .filter(|(_, l, _)| *l == p.language)
                        .map(|(name, _, image)| VariantInfo {
                            name: name.clone(),
                            image: image.clone(),
                            available: false,
                            packages: Default::default(),
                            pool: None,
                        });
                let def = state.pools.recipes().get(&p.language);
                let recipe = def.map(|d| &d.recipe);
                LanguageInfo {
                    name: p.language.clone(),
                    title: recipe.map_or_else(|| p.language.to_string(), |r| r.title.clone()),
                    aliases: recipe.map(|r| r.aliases.clone()).unwrap_or_default(),
                    file: recipe.map(|r| r.file.clone()).unwrap_or_default(),
                    compiled: recipe.is_some_and(|r| r.is_compiled()),
                    resident: ResidentForms {
                        edge: def.is_some_and(|d| d.has_resident_form(false)),
                        plain: def.is_some_and(|d| d.has_resident_form(true)),
                    },
                    note: recipe.and_then(|r| r.note.clone()),
                    available: p.available,
                    image: p.image.clone(),
                    toolchain: p.toolchain.clone(),
                    variants: built.chain(missing).collect(),
                    pool: p,
                }
            })
            .collect(),
    )
}

/// The process is alive (says nothing about Docker).
#[utoipa::path(get, path = "/healthz", responses((status = 200)))]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Docker answers and every enabled language has its minimum of idle containers.
#[utoipa::path(get, path = "/readyz", responses((status = 200), (status = 503)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    let (ready, docker, redis, pools) = readiness(&state).await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({"ready": ready, "docker": docker, "redis": redis, "pools": pools})),
    )
}

/// Whether the gateway takes traffic: the engine answers, every pool has its warm
/// minimum and (with replicas) Redis answers. (ready, docker, redis, pools)
async fn readiness(
    state: &AppState,
) -> (bool, bool, Option<bool>, Vec<codebeaker_pool::PoolStatus>) {
    let docker = state.pools.docker_alive().await;
    let pools = state.pools.status();
    let warm = pools.iter().all(|p| p.is_warm());
    // With replicas, a replica that cannot reach Redis cannot take traffic either.
    let redis = match &state.shared {
        Some(s) => Some(s.ping().await),
        None => None,
    };
    (docker && warm && redis != Some(false), docker, redis, pools)
}

/// `GET /metrics`: pool gauges and lifecycle counters are read at scrape time.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (ready, docker, _, _) = readiness(&state).await;
    crate::metrics::readiness(docker, ready, state.sessions.len());
    crate::metrics::pools(
        &state.pools.status(),
        state.admission.in_flight(),
        state.pools.compile_cache_bytes(),
        &state.pools.health(),
    );
    crate::metrics::instances(
        state.pools.idle_instances(),
        state.pools.instances_started(),
    );
    let (depth, oldest) = state.executions.queue_depth().await;
    crate::metrics::execution_queue(depth, oldest);
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
