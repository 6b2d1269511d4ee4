//! Where authentication plugs into the request pipeline.
//!
//! Every `/v1` route passes through [`authenticate`] before its handler. Today it admits
//! every caller as the anonymous principal; API keys and JWT replace its body, and handlers
//! already receive the [`Principal`] they will use for scopes, tenancy and limits.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Who is calling. Filled in by [`authenticate`], read by handlers through extensions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub subject: String,
    pub tenant: String,
}

impl Principal {
    pub fn anonymous() -> Self {
        Principal {
            subject: "anonymous".into(),
            tenant: "default".into(),
        }
    }
}

pub async fn authenticate(mut req: Request, next: Next) -> Response {
    req.extensions_mut().insert(Principal::anonymous());
    next.run(req).await
}
