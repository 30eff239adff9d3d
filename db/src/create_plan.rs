//! The read a VM create starts from: its offering, its image and its L3 networks (with their
//! L2 network's physical interface), in one query, since it is on every create's path. The
//! tables are others' (`instance_offerings`, `images`, `l3_networks`, `l2_networks`); this
//! read joins them for the create alone. The image's and each L3 network's owner come with
//! them: whether the VM's account may use them is the engine's to say.

use std::sync::LazyLock;

use crate::ids::{AccountId, ImageId, InstanceOfferingId, L2NetworkId, L3NetworkId, ZoneId};
use crate::rows::Stored;
use crate::{Db, DbError, Dialect};

/// What a create reads, each part `None` (or left out) when it is not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanRow {
    /// The offering's cpus and memory bytes.
    pub offering: Option<(u32, u64)>,
    pub image: Option<PlanImage>,
    /// The L3 networks asked for that exist, in no particular order.
    pub l3_networks: Vec<PlanL3>,
}

/// The image of a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanImage {
    pub url: String,
    pub format: String,
    pub size_bytes: u64,
    /// The account whose own it is; `None`: shared.
    pub account_uuid: Option<AccountId>,
}

/// An L3 network of a create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanL3 {
    pub uuid: L3NetworkId,
    pub zone_uuid: ZoneId,
    pub l2_network_uuid: L2NetworkId,
    pub physical_interface: String,
    /// The account whose own it is; `None`: shared.
    pub account_uuid: Option<AccountId>,
}

/// The query in `dialect`.
fn query(dialect: Dialect) -> &'static str {
    static BOTH: LazyLock<[String; 2]> = LazyLock::new(|| {
        [Dialect::Sqlite, Dialect::Postgres].map(|d| {
            let l3s = d.json_rows(
                "l3.uuid, l3.zone_uuid, l3.l2_network_uuid, l2.physical_interface, \
                 l3.account_uuid",
                None,
            );
            let wanted = d.json_elements("?3");
            format!(
                "SELECT o.cpus, o.memory_bytes, i.url, i.format, i.size_bytes, \
                 i.account_uuid AS image_account_uuid, \
                 (SELECT {l3s} FROM l3_networks l3 \
                  JOIN l2_networks l2 ON l2.uuid = l3.l2_network_uuid \
                  WHERE l3.uuid IN {wanted}) AS l3s_json \
                 FROM (SELECT 1 AS one) AS one LEFT JOIN instance_offerings o ON o.uuid = ?1 \
                 LEFT JOIN images i ON i.uuid = ?2"
            )
        })
    });
    &BOTH[usize::from(dialect == Dialect::Postgres)]
}

/// Reads the offering `offering`, the image `image` and the L3 networks `l3s`.
pub async fn read(
    db: &Db,
    offering: InstanceOfferingId,
    image: ImageId,
    l3s: &[L3NetworkId],
) -> Result<PlanRow, DbError> {
    let wanted = serde_json::to_string(l3s)
        .map_err(|source| DbError::Json { what: "the L3 uuids of a create".into(), source })?;
    let row = sqlx::query(sqlx::AssertSqlSafe(query(db.dialect())))
        .bind(offering.to_string())
        .bind(image.to_string())
        .bind(wanted)
        .fetch_one(db.r())
        .await?;
    let r = Stored { row: &row, table: "instance_offerings" };
    let offering = match (r.opt_int("cpus")?, r.opt_int("memory_bytes")?) {
        (Some(_), Some(_)) => Some((r.u32("cpus")?, r.u64("memory_bytes")?)),
        _ => None,
    };
    let r = Stored { row: &row, table: "images" };
    let image = match (r.opt_text("url")?, r.opt_text("format")?, r.opt_int("size_bytes")?) {
        (Some(url), Some(format), Some(_)) => {
            let account_uuid = r.opt_id("image_account_uuid")?;
            Some(PlanImage { url, format, size_bytes: r.u64("size_bytes")?, account_uuid })
        }
        _ => None,
    };
    let json = Stored { row: &row, table: "l3_networks" }.text("l3s_json")?;
    type L3Tuple = (L3NetworkId, ZoneId, L2NetworkId, String, Option<AccountId>);
    let tuples: Vec<L3Tuple> = serde_json::from_str(&json)
        .map_err(|source| DbError::Json { what: "the L3 networks of a create".into(), source })?;
    let l3_networks = tuples
        .into_iter()
        .map(|(uuid, zone_uuid, l2_network_uuid, physical_interface, account_uuid)| PlanL3 {
            uuid,
            zone_uuid,
            l2_network_uuid,
            physical_interface,
            account_uuid,
        })
        .collect();
    Ok(PlanRow { offering, image, l3_networks })
}

#[cfg(test)]
mod tests;
