//! Where a lake kind reads from: the `url:` and `auth:` keys every lake kind shares.
//!
//! Why a module: `synapse_link_csv` and `delta` read the same storage (a local folder, or
//! Azure Storage in its blob, ADLS Gen2, OneLake and emulator forms) with the same
//! credentials, so the URL grammar, the auth rules (required for Azure, refused for
//! `file://`, Entra-only for OneLake) and the metered store built from them live here once.

use std::path::PathBuf;
use std::sync::Arc;

use super::BuildContext;
use crate::auth::{Accepts, AuthBlock, Credential, STORAGE_SCOPE};
use crate::config::Issue;
use crate::gate::Gate;
use crate::lake::blob::{BlobAuth, BlobLocation, BlobStore, Service, SharedKey, URL_FORMS};
use crate::lake::{LakeStore, LocalStore, Metered};

/// How long a lake target remembers the sentinels it found (longer than any sensible lake
/// timeout).
pub const REMEMBER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Lake data that closed or was written this long before start-up is skipped unread; the
/// margin covers clock offsets between lagwatch and the storage.
pub const START_MARGIN: std::time::Duration = std::time::Duration::from_secs(600);

/// The instant before which lake data cannot hold this lagwatch's sentinels.
pub fn start_since() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
        - chrono::Duration::from_std(START_MARGIN).unwrap_or(chrono::Duration::zero())
}

/// Where a lake is read from.
#[derive(Debug, Clone)]
pub enum LakeUrl {
    Local(PathBuf),
    Blob(BlobLocation),
}

/// The local folder of a `file://` URL, or the Azure Storage location of any other.
///
/// # Errors
/// Why the URL is not one of the accepted forms (no secret from a query is repeated).
pub fn lake_url(url: &str) -> Result<LakeUrl, String> {
    match url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
    {
        Some(s) if s == "file" => {
            let parsed =
                url::Url::parse(url).map_err(|e| format!("\"{url}\" is not a URL ({e})"))?;
            parsed
                .to_file_path()
                .map(LakeUrl::Local)
                .map_err(|()| format!("\"{url}\" is not a local folder URL such as file:///lake/c"))
        }
        Some(s) if matches!(s.as_str(), "az" | "azure" | "adl" | "wasb" | "wasbs") => Err(format!(
            "\"{url}\": write the lake's URL in one of these forms: file:///path/to/container, \
                 {URL_FORMS}"
        )),
        _ => BlobLocation::parse(url).map(LakeUrl::Blob),
    }
}

/// Checks a lake kind's `url` and `auth` keys together (`key` is `systems.<name>`).
///
/// # Errors
/// An [`Issue`] naming `url`, `auth` or `auth.method`.
pub fn check(key: &str, url: &str, auth: &mut Option<AuthBlock>) -> Result<(), Issue> {
    let lake = lake_url(url).map_err(|why| Issue::new(format!("{key}.url"), why))?;
    let akey = format!("{key}.auth");
    match (&lake, auth) {
        (LakeUrl::Local(_), None) => Ok(()),
        (LakeUrl::Local(_), Some(_)) => Err(Issue::new(
            akey,
            "a file:// lake is read from the local file system and takes no auth; remove it",
        )),
        (LakeUrl::Blob(_), None) => Err(Issue::new(
            akey,
            "required for a lake in Azure Storage: an Entra method (client_secret, \
             client_certificate, workload_identity, managed_identity), shared_key, sas, or \
             none for anonymous read access",
        )),
        (LakeUrl::Blob(loc), Some(auth)) => {
            let credential = auth.resolve(&akey, Accepts::STORAGE)?;
            if loc.service == Service::OneLake && !matches!(credential, Credential::Entra(_)) {
                return Err(Issue::new(
                    format!("{akey}.method"),
                    format!(
                        "OneLake takes Entra ID only (client_secret, client_certificate, \
                         workload_identity, managed_identity), not {}",
                        credential.method()
                    ),
                ));
            }
            Ok(())
        }
    }
}

/// The store of system `name`, counted into its `lagwatch_lake_*` metrics.
///
/// # Errors
/// An [`Issue`] when the URL or credential cannot be used (checked at decode already).
pub fn open(
    name: &str,
    url: &str,
    auth: Option<&AuthBlock>,
    cx: &BuildContext,
    gate: &Arc<Gate>,
) -> Result<Box<dyn LakeStore>, Issue> {
    let lake = lake_url(url).map_err(|why| Issue::new(format!("systems.{name}.url"), why))?;
    let listed = cx.metrics.lake_objects_listed.with_label_values(&[name]);
    let read = cx.metrics.lake_bytes_read.with_label_values(&[name]);
    Ok(match lake {
        LakeUrl::Local(root) => Box::new(Metered::new(LocalStore::new(root), listed, read)),
        LakeUrl::Blob(location) => {
            let blob = blob_store(name, auth, cx, gate, location)?;
            Box::new(Metered::new(blob, listed, read))
        }
    })
}

/// The Azure Storage reader of `location`, authenticated with the decoded `auth:` block.
fn blob_store(
    name: &str,
    auth: Option<&AuthBlock>,
    cx: &BuildContext,
    gate: &Arc<Gate>,
    location: BlobLocation,
) -> Result<BlobStore, Issue> {
    let akey = format!("systems.{name}.auth");
    let credential = auth
        .and_then(AuthBlock::credential)
        .ok_or_else(|| Issue::new(&akey, "the auth block was not decoded"))?;
    // The HTTP layer adds Entra tokens; account keys and SAS tokens are applied per request.
    let (http_credential, blob_auth) = match credential {
        Credential::SharedKey { account_key } => (
            Credential::None,
            BlobAuth::SharedKey(
                // A key not read (`check-config --no-resolve`) builds with a stand-in: such a
                // build only checks and never sends a request.
                SharedKey::new(
                    &location.account,
                    if account_key.is_resolved() {
                        account_key.expose()
                    } else {
                        "AA=="
                    },
                )
                .map_err(|why| Issue::new(format!("{akey}.account_key"), why))?,
            ),
        ),
        Credential::Sas { token } => (Credential::None, BlobAuth::Sas(token.clone())),
        other => (other.clone(), BlobAuth::Http),
    };
    let http = super::http_system(
        name,
        cx,
        gate,
        Some(&http_credential),
        || Ok(STORAGE_SCOPE.to_string()),
        None,
    )?;
    Ok(BlobStore::new(http, location, blob_auth))
}
