//! Compile artifacts and the shared compile cache, on the request path: the key of a
//! program (computed here from the tenant and the source, never named by a container),
//! pinning it while a call may run it, and filing a freshly compiled artifact.

use codebeaker_recipe::Recipe;
use std::sync::Arc;

use crate::cache::{ArtifactKeys, Pin, SharedCache};
use crate::container::Container;

/// The cache key of `source` on `container` for `tenant` (see `cache.rs`), for a compiled
/// language.
pub(crate) fn program_key(
    keys: &ArtifactKeys,
    tenant: &str,
    recipe: &Recipe,
    container: &Container,
    source: &str,
    files: &[codebeaker_proto::ProgramFile],
) -> Option<String> {
    recipe.is_compiled().then(|| {
        keys.key(
            tenant,
            &recipe.name,
            recipe.translator_version(),
            &container.info.toolchain,
            source,
            files,
        )
    })
}

/// Pins `key` in the shared cache, if there is one and the language is compiled.
pub(crate) fn pin(
    cache: &Option<Arc<SharedCache>>,
    recipe: &Recipe,
    key: Option<&str>,
) -> Option<Pin> {
    Some(cache.as_ref()?.pin(recipe.artifact_extension(), key?))
}

/// Files a freshly compiled artifact in the shared compile cache, under the key computed
/// here from the tenant and the source the container was sent (never one the container
/// names). Waited for, so that the next container to run the program finds it; a failure
/// only costs a compile elsewhere.
pub(crate) fn file_artifact(
    cache: Option<Arc<SharedCache>>,
    recipe: &Recipe,
    key: Option<&str>,
    artifact: Option<String>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // Everything is taken from the arguments now: the future must not borrow them.
    let job = match (cache, key, artifact) {
        (Some(cache), Some(key), Some(artifact)) => Some((
            cache,
            recipe.name.clone(),
            recipe.artifact_extension().to_string(),
            key.to_string(),
            artifact,
        )),
        _ => None,
    };
    async move {
        let Some((cache, language, extension, key, artifact)) = job else {
            return;
        };
        let filed = tokio::task::spawn_blocking(move || {
            cache.insert(&extension, &key, &artifact).map(|()| key)
        })
        .await;
        match filed {
            Ok(Ok(key)) => {
                tracing::debug!(%language, key = %&key[..12], "artifact filed in the shared compile cache")
            }
            Ok(Err(e)) => {
                tracing::warn!(%language, error = %e, "artifact not filed in the shared compile cache")
            }
            Err(e) => tracing::warn!(%language, error = %e, "filing an artifact failed"),
        }
    }
}
