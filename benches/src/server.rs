//! The REST API served in process (`oxstack_api::serve` on 127.0.0.1:0) on its own runtime, over
//! a small simulated cloud with one running VM per client.

use std::net::SocketAddr;

use oxstack_engine::ids::VmId;
use oxstack_engine::services::identity::CreateSession;
use oxstack_engine::{EngineError, EngineResult};
use tokio::runtime::Runtime;

use crate::cloud::{BenchCloud, DbKind};

/// A running API server and the VMs the clients work on.
pub struct ApiServer {
    pub addr: SocketAddr,
    pub vms: Vec<VmId>,
    /// The admin's session token: clients send it as `Authorization: Bearer`.
    pub token: String,
    cloud: Option<BenchCloud>,
    runtime: Runtime,
}

impl ApiServer {
    /// Builds a cloud of `hosts` hosts on `db`, creates `vms` running VMs and serves the API on
    /// a runtime of `workers` threads of its own.
    pub fn start(hosts: u32, vms: usize, db: DbKind, workers: usize) -> EngineResult<Self> {
        let runtime = crate::runtime::multi_thread(workers);
        let (cloud, vms, addr, token) = runtime.block_on(async {
            let cloud = BenchCloud::build(hosts, db, 11).await?;
            let vms = cloud.create_concurrently(vms).await?;
            let password = "the bench's admin password";
            cloud.engine.identity.bootstrap("admin", password).await?;
            let login = CreateSession { name: "admin".into(), password: password.into() };
            let token = cloud.engine.identity.sign_in(login).await?.token;
            let io = |e: std::io::Error| EngineError::Internal(format!("API listener: {e}"));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
            let addr = listener.local_addr().map_err(io)?;
            let engine = cloud.engine.clone();
            tokio::spawn(async move {
                if let Err(e) = oxstack_api::serve(engine, listener).await {
                    eprintln!("API server failed: {e}");
                }
            });
            Ok::<_, EngineError>((cloud, vms, addr, token))
        })?;
        Ok(Self { addr, vms, token, cloud: Some(cloud), runtime })
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(cloud) = self.cloud.take() {
            self.runtime.block_on(cloud.shutdown());
        }
    }
}
