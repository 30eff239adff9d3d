//! Tenants in the SUT (the model's half is `tenants`): the two tenant accounts made with the
//! cloud, creates run for their owner, each account's usage read for the checks, and the
//! cross-tenant step.
//!
//! A tenant's create is the engine's plan made for the account, which charges it
//! (`VmService::plan_create_vm_for`), as the API makes a tenant user's; the admin's is
//! `VmService::create_vm`, nobody's, as `oxstack sim` makes one (over the API, the admin
//! account's: see `api_apply`).
//!
//! [`Transition::CrossTenant`]: a tenant asks for another account's VM through the engine's
//! owner-checked entry points, as the API does before every VM action (`api/src/vm.rs`,
//! `precheck`): `VmService::get_vm_of` answers NOT_FOUND, as for a VM that does not exist. The
//! step also records a job on that VM for its owner, as the API records one for each action
//! (`JobService::start`), and asks for it as the tenant (`JobService::get_of`: NOT_FOUND) and as
//! its owner (found); and lists the tenant's VMs and jobs (`list_vms_of`, `list_of`): exactly
//! the VMs the model has it own, and only its own jobs. Nothing else changes, which the
//! snapshot after the step checks.

use std::collections::{BTreeMap, BTreeSet};

use oxstack_engine::ids::AccountId;
use oxstack_engine::services::identity::accounts::{AccountUsage, CreateAccount};
use oxstack_engine::services::jobs::JobEnd;
use oxstack_engine::services::ownership::Requester;
use oxstack_engine::services::vm::{CreateVm, VmInstance, VmState};
use oxstack_engine::services::ListQuery;
use oxstack_engine::{Engine, EngineError, EngineResult};
use oxstack_hypervisor::VmId;
use proptest::prelude::*;

use crate::engine_model::NOT_FOUND;
use crate::ops::Answer;
use crate::reference::{RefState, VmNo};
use crate::sut::Sut;
use crate::tenants::Owner;
use crate::transitions::{pick, Options, Transition};

/// The weight of a cross-tenant step among the sequential steps (of about 130 in all).
pub const WEIGHT: u32 = 3;

/// The extra weight of an expunge of a VM of a tenant its quota stops, and half of it of a
/// destroy: so that fresh cases reach `paths::Path::QuotaFreedThenCreated` (by chance alone,
/// 2 cases in 300 did).
pub const FREEING: u32 = 4;

/// Offers [`Transition::CrossTenant`] in `state`: a tenant and a VM another account owns; and,
/// for a tenant whose quota has no room for the smallest VM, the destroys and expunges that
/// give it room (see [`FREEING`]).
pub fn offer(state: &RefState, opts: &mut Options) {
    let pairs: Vec<(Owner, VmNo)> = Owner::TENANTS
        .into_iter()
        .flat_map(|t| {
            state.vms.iter().filter(move |(_, v)| v.owner != t).map(move |(n, _)| (t, *n))
        })
        .collect();
    if !pairs.is_empty() {
        let peek = pick(pairs).prop_map(|(tenant, vm)| Transition::CrossTenant { tenant, vm });
        opts.push((WEIGHT, peek.boxed()));
    }
    let full = |o: Owner| state.quota_room(o, 0, 1) == 0;
    let held: Vec<(VmNo, VmState)> = state
        .vms
        .iter()
        .filter(|(_, v)| v.owner.is_tenant() && full(v.owner))
        .map(|(n, v)| (*n, v.state))
        .collect();
    let destroyed: Vec<VmNo> =
        held.iter().filter(|(_, s)| *s == VmState::Destroyed).map(|(n, _)| *n).collect();
    let live: Vec<VmNo> = held
        .iter()
        .filter(|(_, s)| matches!(s, VmState::Running | VmState::Paused | VmState::Stopped))
        .map(|(n, _)| *n)
        .collect();
    if !destroyed.is_empty() {
        opts.push((FREEING, pick(destroyed).prop_map(|vm| Transition::Expunge { vm }).boxed()));
    }
    if !live.is_empty() {
        opts.push((FREEING / 2, pick(live).prop_map(|vm| Transition::Destroy { vm }).boxed()));
    }
}

/// Whether `tenant` may look at `vm` in `state` in a cross-tenant step: a tenant, and a VM
/// another account owns.
pub fn preconditions(state: &RefState, tenant: Owner, vm: VmNo) -> bool {
    tenant.is_tenant() && state.vms.get(&vm).is_some_and(|v| v.owner != tenant)
}

/// Makes the tenant accounts with their quotas (see `tenants`).
pub async fn create_tenants(engine: &Engine) -> Result<BTreeMap<Owner, AccountId>, EngineError> {
    let mut out = BTreeMap::new();
    for owner in Owner::TENANTS {
        let quotas = owner.quotas().unwrap_or_default();
        let req = CreateAccount { name: owner.account_name().into(), quotas };
        out.insert(owner, engine.identity.create_account(req).await?.uuid);
    }
    Ok(out)
}

/// The largest page, which must hold the whole list (a model test's cloud is far smaller).
fn all() -> ListQuery {
    ListQuery { limit: Some(1_000), ..Default::default() }
}

impl Sut {
    /// The account of `owner`'s VMs: a tenant's, the admin account's over the API, `None` (the
    /// VMs are nobody's) for the admin's engine calls.
    pub fn account_of(&self, owner: Owner) -> Option<AccountId> {
        match owner {
            Owner::Admin => self.admin_account,
            tenant => self.accounts.get(&tenant).copied(),
        }
    }

    /// Whose a VM of `account` is: the admin's when it is nobody's (made by an engine call) or
    /// the admin account's (over the API); `None`: an account the test does not know.
    pub fn owner_of(&self, account: Option<AccountId>) -> Option<Owner> {
        let Some(account) = account else { return Some(Owner::Admin) };
        if Some(account) == self.admin_account {
            return Some(Owner::Admin);
        }
        self.accounts.iter().find(|(_, a)| **a == account).map(|(o, _)| *o)
    }

    /// Each tenant account's usage, as the engine shows it (node 0's view of the database).
    pub fn read_usage(&self) -> BTreeMap<Owner, AccountUsage> {
        let read = |a: AccountId| self.rt.block_on(self.engine.identity.account(a));
        (self.accounts.iter())
            .map(|(o, a)| match read(*a) {
                Ok(account) => (*o, account.usage),
                Err(e) => self.fail(format!("reading {o:?}'s account: {e}")),
            })
            .collect()
    }

    /// Runs the create `req` on engine `e` for `owner` (see the module doc).
    pub async fn create_for(
        &self,
        e: &Engine,
        req: CreateVm,
        owner: Owner,
    ) -> EngineResult<VmInstance> {
        match self.accounts.get(&owner) {
            Some(account) => {
                let tenant = Some(Requester { account: *account, tenant: true });
                let plan = e.vms.plan_create_vm_for(req, tenant).await?;
                e.vms.run_create_vm(plan).await
            }
            None => e.vms.create_vm(req).await,
        }
    }

    /// The cross-tenant step on engine `e` (see the module doc): the answer to `get_vm_of`;
    /// fails the case when the lists or the job show the tenant what is not its own.
    pub async fn cross_tenant(&self, e: &Engine, tenant: Owner, vm: VmNo) -> Answer {
        let Some(account) = self.accounts.get(&tenant).copied() else {
            self.fail(format!("{tenant:?} has no account"))
        };
        let id = self.vm(vm);
        let got = Answer::of(e.vms.get_vm_of(id, Some(account)).await);
        let listed = match e.vms.list_vms_of(&all(), Some(account)).await {
            Ok(page) => page.items,
            Err(err) => self.fail(format!("{tenant:?} lists its VMs: {err}")),
        };
        let numbered: BTreeMap<_, _> = self.vms.iter().map(|(n, id)| (*id, *n)).collect();
        let listed: BTreeSet<Option<VmNo>> =
            listed.iter().map(|v| numbered.get(&v.uuid).copied()).collect();
        let own: BTreeSet<Option<VmNo>> = self
            .actual
            .vms
            .iter()
            .filter(|(_, v)| v.owner == tenant)
            .map(|(n, _)| Some(*n))
            .collect();
        if listed != own {
            self.fail(format!(
                "{tenant:?} lists the VMs {listed:?} (None: one the test never made), the model \
                 has it own {own:?}"
            ));
        }
        let owner = self.actual.vms.get(&vm).map_or(Owner::Admin, |v| v.owner);
        self.check_jobs_across(e, tenant, account, id, owner).await;
        got
    }

    /// Records a job on the VM `resource` for its `owner`, and checks that `tenant` (of
    /// `account`) does not find it but its owner does, and that the tenant's list of jobs has
    /// only its own.
    async fn check_jobs_across(
        &self,
        e: &Engine,
        tenant: Owner,
        account: AccountId,
        resource: VmId,
        owner: Owner,
    ) {
        let owners = self.account_of(owner);
        let job = match e.jobs.start("read-vm", resource.0, owners).await {
            Ok((job, _)) => job,
            Err(err) => self.fail(format!("recording a job of {owner:?}'s: {err}")),
        };
        e.jobs.finish(job, JobEnd::Succeeded { result: None }).await;
        let theirs = e.jobs.get_of(job, Some(account)).await;
        if !matches!(&theirs, Err(err) if err.code() == NOT_FOUND) {
            self.fail(format!(
                "{tenant:?} asks for a job of {owner:?}'s: {theirs:?}, not NOT_FOUND"
            ));
        }
        if let Err(err) = e.jobs.get_of(job, owners).await {
            self.fail(format!("{owner:?} asks for its own job: {err}"));
        }
        match e.jobs.list_of(&all(), Some(account)).await {
            Ok(page) => {
                if let Some(other) = page.items.iter().find(|j| j.account_uuid != Some(account)) {
                    self.fail(format!("{tenant:?}'s list of jobs has another's: {other:?}"));
                }
            }
            Err(err) => self.fail(format!("{tenant:?} lists its jobs: {err}")),
        }
    }
}
