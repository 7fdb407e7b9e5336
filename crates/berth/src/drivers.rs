//! The built-in `null` and `host` drivers: no data path at all.

use berth_driver::{
    Capabilities, DataPath, EndpointId, EndpointSpec, InterfaceInfo, JoinInfo, JoinRequest,
    NetworkDriver, NetworkId, NetworkSpec, OptionReader, RawOptions, Result,
};

/// `none`: the sandbox keeps only its loopback interface.
#[derive(Debug, Default)]
pub struct NullDriver;

/// `host`: the sandbox is the host's own namespace.
#[derive(Debug, Default)]
pub struct HostDriver;

macro_rules! no_data_path {
    ($t:ty, $name:literal, $path:expr) => {
        impl NetworkDriver for $t {
            type Options = ();

            fn name(&self) -> &'static str {
                $name
            }

            fn capabilities(&self) -> Capabilities {
                Capabilities::new($path).user_creatable(false)
            }

            fn parse_options(&self, raw: &RawOptions) -> Result<()> {
                OptionReader::new($name, raw).finish()
            }

            fn create_network(&self, _: &NetworkSpec, _: &()) -> Result<()> {
                Ok(())
            }

            fn delete_network(&self, _: &NetworkId) -> Result<()> {
                Ok(())
            }

            fn create_endpoint(&self, _: &EndpointSpec) -> Result<InterfaceInfo> {
                Ok(InterfaceInfo {
                    mac: None,
                    ipv4: None,
                    ipv6: None,
                })
            }

            fn delete_endpoint(&self, _: &NetworkId, _: &EndpointId) -> Result<()> {
                Ok(())
            }

            fn join(&self, _: &JoinRequest<'_>) -> Result<JoinInfo> {
                Ok(JoinInfo::default())
            }

            fn leave(&self, _: &NetworkId, _: &EndpointId) -> Result<()> {
                Ok(())
            }
        }
    };
}

no_data_path!(NullDriver, "null", DataPath::Isolated);
no_data_path!(HostDriver, "host", DataPath::HostNamespace);
