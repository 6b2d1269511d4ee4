//! The isolation every sandbox container gets, and why (see ARCHITECTURE.md, "Isolation").

use bollard::models::{HostConfig, ResourcesUlimits};
use codebeaker_proto::{Language, SHARED_CACHE_MOUNT};
use std::collections::HashMap;
use std::path::Path;

use crate::config::PoolSettings;
use crate::error::PoolError;

/// Marks every container CodeBeaker created.
pub const LABEL_MANAGED: &str = "codebeaker.managed";
/// The gateway instance a container belongs to (`pool.instance`).
pub const LABEL_INSTANCE: &str = "codebeaker.instance";
/// The language a container runs.
pub const LABEL_LANGUAGE: &str = "codebeaker.language";

/// Mount point of the agent bundle inside containers.
pub const BUNDLE_MOUNT: &str = "/opt/codebeaker";

/// The labels that let this gateway (and its next process) find its containers.
pub fn labels(settings: &PoolSettings, language: &Language) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_MANAGED.to_string(), "true".to_string()),
        (LABEL_INSTANCE.to_string(), settings.instance.clone()),
        (LABEL_LANGUAGE.to_string(), language.name().to_string()),
    ])
}

/// Network, file systems, memory, CPU, processes, capabilities and ulimits.
/// `shared_cache` is the canonical host path of the shared compile cache, if there is one.
pub fn host_config(
    runtime: &str,
    settings: &PoolSettings,
    shared_cache: Option<&Path>,
) -> Result<HostConfig, PoolError> {
    let limits = &settings.limits;
    let uid = limits.sandbox_uid;
    let tmpfs = HashMap::from([
        // The user's working directory, owned by the sandbox uid.
        (
            "/workspace".to_string(),
            format!(
                "rw,exec,nosuid,nodev,size={}m,uid={uid},gid={uid},mode=0755",
                limits.workspace_mb
            ),
        ),
        (
            "/tmp".to_string(),
            format!("rw,exec,nosuid,nodev,size={}m,mode=1777", limits.tmp_mb),
        ),
        // Compiled artifacts: the agent's (root) only; it keeps programs' artifacts in a
        // 0700 directory and copies one out for its run (agent/src/compile.rs).
        (
            "/cache".to_string(),
            format!("rw,exec,nosuid,nodev,size={}m,mode=0711", limits.cache_mb),
        ),
    ]);
    let memory = (limits.memory_mb * 1024 * 1024) as i64;
    let bundle =
        std::fs::canonicalize(&settings.agent_bundle).map_err(|source| PoolError::AgentBundle {
            path: settings.agent_bundle.clone(),
            source,
        })?;
    let recipes = std::fs::canonicalize(&settings.languages_dir).map_err(|source| {
        PoolError::AgentBundle {
            path: settings.languages_dir.clone(),
            source,
        }
    })?;
    let mut binds = vec![
        format!("{}:{BUNDLE_MOUNT}:ro", bundle.display()),
        // Every language's recipe: the agent reads its own at start-up.
        format!(
            "{}:{}:ro",
            recipes.display(),
            codebeaker_recipe::CONTAINER_DIR
        ),
    ];
    if let Some(cache) = shared_cache {
        // Read-only: only the gateway writes the shared compile cache (cache.rs).
        binds.push(format!("{}:{SHARED_CACHE_MOUNT}:ro", cache.display()));
    }
    Ok(HostConfig {
        binds: Some(binds),
        network_mode: Some("none".into()),
        readonly_rootfs: Some(true),
        tmpfs: Some(tmpfs),
        memory: Some(memory),
        // Swap equal to memory means no swap: an over-limit program is OOM-killed at once
        // instead of thrashing.
        memory_swap: Some(memory),
        // 0: no CFS quota, only the equal CPU weight every container has (see
        // `ContainerLimits::cpus`).
        nano_cpus: (limits.cpus > 0.0).then_some((limits.cpus * 1e9) as i64),
        pids_limit: Some(limits.pids),
        // The agent needs exactly three capabilities: SETUID and SETGID to start user
        // processes as the sandbox uid and to switch its own effective uid for file work,
        // and KILL to kill processes of that other uid during cleanup. No DAC override:
        // all file work happens with the user's own permissions.
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec!["SETUID".into(), "SETGID".into(), "KILL".into()]),
        security_opt: Some(vec!["no-new-privileges".into()]),
        ulimits: Some(vec![
            ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(limits.nofile),
                hard: Some(limits.nofile),
            },
            ResourcesUlimits {
                name: Some("fsize".into()),
                soft: Some(limits.fsize_mb * 1024 * 1024),
                hard: Some(limits.fsize_mb * 1024 * 1024),
            },
        ]),
        // No negative oom_score_adj for the agent: lowering it needs privileges that not
        // every engine host grants (runc fails to start the container). The agent raises
        // every user process to +1000 instead, which makes them the OOM killer's choice.
        shm_size: Some(16 * 1024 * 1024),
        ipc_mode: Some("private".into()),
        // The OCI runtime: runc (Docker's default) or a stronger sandbox such as gVisor's
        // runsc, registered in the engine's daemon.json.
        runtime: (!runtime.is_empty() && runtime != "runc").then(|| runtime.to_string()),
        ..Default::default()
    })
}
