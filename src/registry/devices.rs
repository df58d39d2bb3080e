//! The rules for editing and deleting devices, each in one transaction with its audit entry.

use crate::mac::MacAddr;
use crate::model::{Compliance, Device, DeviceKind, DeviceStatus, FieldError, NewDevice};

use super::{audit, mac_taken, unique_as, Change, DeviceRef, Registry, RegistryError, Target};

/// An edit of a device: `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceEdit {
    /// Label.
    pub label: Option<String>,
    /// Kind.
    pub kind: Option<DeviceKind>,
    /// MACs to add (a phone's new private MAC): each must be free.
    pub add_macs: Vec<MacAddr>,
    /// MACs to remove: freed for another device. At least one MAC stays.
    pub remove_macs: Vec<MacAddr>,
}

/// Which devices to list.
#[derive(Debug, Clone, Default)]
pub struct DeviceQuery {
    /// Only this owner's (a username).
    pub owner: Option<String>,
    /// Only with this status.
    pub status: Option<DeviceStatus>,
    /// Only with this compliance state.
    pub compliance: Option<Compliance>,
}

impl DeviceQuery {
    /// Whether `d` is one of them (the owner is chosen by the store).
    pub fn matches(&self, d: &Device) -> bool {
        self.status.is_none_or(|s| s == d.status)
            && self.compliance.is_none_or(|c| c == d.compliance)
    }
}

impl Registry {
    /// Devices as the query says, oldest first.
    pub async fn find_devices(&self, query: &DeviceQuery) -> Result<Vec<Device>, RegistryError> {
        Ok(self
            .devices(query.owner.as_deref())
            .await?
            .into_iter()
            .filter(|d| query.matches(d))
            .collect())
    }

    /// Edits a device's label, kind and MACs, keeping its id, certificate and history. The
    /// result is checked as a new device is (1 to 8 MACs, each a device address); a MAC
    /// another device holds is refused, naming it. An edit that changes nothing writes nothing.
    pub async fn edit_device(
        &self,
        r: &DeviceRef,
        edit: DeviceEdit,
        change: &Change,
    ) -> Result<Device, RegistryError> {
        let id = self.find_device(r).await?.id;
        let mut tx = self.store.begin().await?;
        let before = tx
            .device_for_update(id)
            .await?
            .ok_or_else(|| RegistryError::UnknownDevice(id.to_string()))?;
        for mac in &edit.remove_macs {
            if !before.macs.contains(mac) {
                return Err(FieldError::new(
                    "remove_mac",
                    format!("{mac} is not a MAC of this device"),
                )
                .into());
            }
        }
        let mut macs: Vec<MacAddr> = before
            .macs
            .iter()
            .filter(|m| !edit.remove_macs.contains(m))
            .copied()
            .collect();
        for mac in &edit.add_macs {
            if before.macs.contains(mac) && !edit.remove_macs.contains(mac) {
                continue;
            }
            macs.push(*mac);
        }
        let checked = NewDevice {
            owner: before.owner.clone(),
            label: edit.label.unwrap_or_else(|| before.label.clone()),
            kind: edit.kind.unwrap_or(before.kind),
            macs,
        }
        .validate()
        .map_err(|e| match e.field {
            "mac" if e.message.starts_with("at least one") => FieldError::new(
                "remove_mac",
                "a device keeps at least one MAC address; add the new one first",
            ),
            _ => e,
        })?;
        for mac in &checked.macs {
            if before.macs.contains(mac) {
                continue;
            }
            if let Some(holder) = tx.device_by_mac(*mac).await? {
                return Err(mac_taken(*mac, &holder));
            }
        }
        let after = Device {
            label: checked.label,
            kind: checked.kind,
            macs: checked.macs,
            ..before.clone()
        };
        if after == before {
            return Ok(before);
        }
        let after = Device {
            updated_at: change.now,
            ..after
        };
        tx.update_device(&after).await?;
        if after.macs != before.macs {
            tx.set_device_macs(after.id, &after.macs)
                .await
                .map_err(|e| {
                    unique_as(e, || {
                        RegistryError::Field(FieldError::new(
                            "add_mac",
                            "a MAC was registered to another device at the same moment",
                        ))
                    })
                })?;
        }
        tx.append_audit(&audit(
            change,
            "device.edit",
            Target::Device(&after),
            Some(&before),
            Some(&after),
        ))
        .await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Deletes a device registered by mistake or long gone, with its MACs (freed), its
    /// certificates and posture reports; the audit log keeps its record, and its sessions
    /// and decisions age out with the retention. Refused while one of its certificates is
    /// still valid: that certificate must stay on the CRL until it ends (revoke the device
    /// now; delete it after). An open session of the device is disconnected by the enforcer.
    pub async fn delete_device(
        &self,
        r: &DeviceRef,
        change: &Change,
    ) -> Result<Device, RegistryError> {
        let found = self.find_device(r).await?;
        let id = found.id;
        let valid_until = self
            .store
            .certificates(id)
            .await?
            .into_iter()
            .map(|c| c.not_after)
            .filter(|end| *end > change.now)
            .max();
        if let Some(until) = valid_until {
            return Err(RegistryError::DeviceCertificateValid { device: id, until });
        }
        let mut tx = self.store.begin().await?;
        let before = tx
            .device_for_update(id)
            .await?
            .ok_or_else(|| RegistryError::UnknownDevice(id.to_string()))?;
        // a certificate is recorded with the device row locked and names itself on it: the
        // list read above is complete unless the row changed since
        if before.cert_serial != found.cert_serial {
            return Err(RegistryError::Field(FieldError::new(
                "device",
                "the device got a certificate at the same moment; try again",
            )));
        }
        tx.delete_device(id).await?;
        tx.append_audit(&audit(
            change,
            "device.delete",
            Target::Device(&before),
            Some(&before),
            None::<&Device>,
        ))
        .await?;
        tx.commit().await?;
        Ok(before)
    }
}
