//! Portico's gRPC contracts, generated from `proto/` at build time.

/// Encoded `FileDescriptorSet` of every contract, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/portico_descriptor.bin"));

/// The beta program service.
pub mod beta {
    /// Version 1 of the beta contract.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("portico.beta.v1");
    }
}

/// Operational introspection every service serves.
pub mod ops {
    /// Version 1 of the ops contract.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("portico.ops.v1");
    }
}

/// The workflow analysis service.
pub mod workflow {
    /// Version 1 of the workflow contract.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("portico.workflow.v1");
    }
}

/// The mobile media service.
pub mod media {
    /// Version 1 of the media contract.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("portico.media.v1");
    }
}

/// The billing service.
pub mod billing {
    /// Version 1 of the billing contract.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("portico.billing.v1");
    }

    /// The gateway's cache of entitlements (by user id). Billing invalidates its keys through
    /// the shared cache channel when a user's entitlement changes, so every gateway replica
    /// sees the change at once when Redis is configured (within the in-process lifetime
    /// otherwise).
    pub const ENTITLEMENTS_CACHE: &str = "billing.entitlements";
}

/// The monitoring service.
pub mod monitoring {
    /// Version 1 of the monitoring contract.
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("portico.monitoring.v1");
    }
}
