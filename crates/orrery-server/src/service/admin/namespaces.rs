//! Operator namespace reservations: `ReserveNamespace` and `ReleaseNamespace` (written on
//! the leader), `GetNamespace` and `ListNamespaces` (linearizable or stale).

use orrery_proto::pb;
use orrery_store::NamespaceOwner;
use orrery_store::NamespaceRecord;
use orrery_types::cmd::Cmd;
use orrery_types::cmd::CmdOutcome;

use super::AdminService;
use crate::errors::ApiError;
use crate::service::header::internal;
use crate::service::header::namespace_info;

impl AdminService {
    pub(super) async fn reserve(
        &self,
        r: pb::ReserveNamespaceRequest,
    ) -> Result<pb::NamespaceResponse, ApiError> {
        let cmd = Cmd::ReserveNamespace {
            namespace: r.namespace.clone(),
            group: r.group_id.clone(),
        };
        let (revision, changed) = match self.core.write_cmd(r.request_id, cmd).await? {
            CmdOutcome::Reserved { revision } => (revision, true),
            CmdOutcome::AlreadyReserved { revision } => (revision, false),
            other => return Err(internal(format!("reserve answered {other:?}"))),
        };
        let record = NamespaceRecord {
            owner: NamespaceOwner::Group(r.group_id),
            reserved_at: revision,
            operator_reserved: true,
        };
        Ok(pb::NamespaceResponse {
            header: Some(self.core.header(Some(revision), false)?),
            namespace: Some(namespace_info(&r.namespace, &record)),
            changed,
        })
    }

    pub(super) async fn release(
        &self,
        r: pb::ReleaseNamespaceRequest,
    ) -> Result<pb::NamespaceResponse, ApiError> {
        let cmd = Cmd::ReleaseNamespace {
            namespace: r.namespace.clone(),
        };
        // The record as apply removed it: what this release freed.
        let (revision, released) = match self.core.write_cmd(r.request_id, cmd).await? {
            CmdOutcome::Released {
                revision,
                owner,
                reserved_at,
                operator_reserved,
            } => (
                revision,
                NamespaceRecord {
                    owner,
                    reserved_at,
                    operator_reserved,
                },
            ),
            other => return Err(internal(format!("release answered {other:?}"))),
        };
        let mut info = namespace_info(&r.namespace, &released);
        info.modified_revision = revision;
        Ok(pb::NamespaceResponse {
            header: Some(self.core.header(Some(revision), false)?),
            namespace: Some(info),
            changed: true,
        })
    }

    pub(super) async fn list(
        &self,
        r: pb::ListNamespacesRequest,
    ) -> Result<pb::ListNamespacesResponse, ApiError> {
        let stale = self.core.prepare_read(r.consistency).await?;
        let listing = self.core.reader.list_namespaces().await.map_err(internal)?;
        let under = format!("{}.", r.prefix);
        let namespaces = listing
            .namespaces
            .iter()
            .filter(|(name, _)| {
                r.prefix.is_empty() || *name == r.prefix || name.starts_with(&under)
            })
            .map(|(name, record)| namespace_info(name, record))
            .collect();
        Ok(pb::ListNamespacesResponse {
            header: Some(self.core.header(Some(listing.revision), stale)?),
            namespaces,
        })
    }

    pub(super) async fn get(
        &self,
        r: pb::GetNamespaceRequest,
    ) -> Result<pb::NamespaceResponse, ApiError> {
        let stale = self.core.prepare_read(r.consistency).await?;
        let header = self.core.header(None, stale)?;
        let record = self
            .core
            .reader
            .get_namespace(&r.namespace)
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound(format!("namespace {:?}", r.namespace)))?;
        Ok(pb::NamespaceResponse {
            header: Some(header),
            namespace: Some(namespace_info(&r.namespace, &record)),
            changed: false,
        })
    }
}
