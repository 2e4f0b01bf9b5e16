//! `[transfer]`: the key air-gapped sites share (SPEC §12), checked at load so a bad key
//! fails `check-config`, not the first export.

use super::Ctx;
use crate::config::raw::{secret_text, RawTransfer};
use crate::config::secret::Bare;
use crate::config::TransferConfig;

impl Ctx<'_> {
    pub(super) fn transfer(&mut self, raw: RawTransfer) -> TransferConfig {
        let Some(text) = secret_text(&raw.key) else {
            return TransferConfig::default();
        };
        let key = self.secret(&text, "transfer.key", Bare::Literal);
        if let Some(Err(err)) = key
            .as_ref()
            .map(|k| crate::transfer::key::decode(k.expose()))
        {
            self.error(text.span(), format!("transfer.key: {err}"));
            return TransferConfig::default();
        }
        TransferConfig { key }
    }
}
