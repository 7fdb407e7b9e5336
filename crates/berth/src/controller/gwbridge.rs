//! The gateway bridge: `docker_gwbridge`, the local bridge network that gives a way out to
//! sandboxes whose networks have none of their own (drivers whose egress is
//! [`Egress::GatewayBridge`], as Docker's overlay), made on demand with Docker's options, or the
//! one the user made under that name.

use berth_driver::Egress;

use super::*;

/// The gateway bridge network's name (and its bridge's), as in Docker.
pub const GATEWAY_BRIDGE: &str = "docker_gwbridge";

impl Controller {
    /// A connect with the sandbox's lock held, followed by the gateway bridge's connect when
    /// the new endpoint makes the sandbox need it (or its disconnect when the new endpoint gives
    /// the sandbox a gateway of its own). If the gateway bridge cannot follow, the connect is
    /// undone and the error returned (as Docker fails a join whose default gateway cannot be set
    /// up).
    pub(super) fn connect_settled(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        net: &Arc<Network>,
        opts: EndpointOptions,
        legacy_links: Vec<LegacyLink>,
    ) -> Result<EndpointId> {
        let id = self.connect_locked(sb, st, net, opts, legacy_links, false)?;
        if let Err(e) = self.settle_gateway_bridge(sb, st) {
            let _ = self.disconnect_locked(sb, st, &net.record.id);
            let _ = self.settle_gateway_bridge(sb, st);
            self.publish(sb, st);
            return Err(e);
        }
        Ok(id)
    }

    /// Connects the sandbox to the gateway bridge when it needs it (an endpoint on a
    /// non-internal network whose driver's egress is the gateway bridge, and no endpoint with a
    /// gateway of its own), and disconnects it when it no longer does. The gateway bridge
    /// endpoint publishes the ports asked for on those networks (their drivers publish none):
    /// when they change, it is made again with the new set.
    pub(super) fn settle_gateway_bridge(&self, sb: &Sandbox, st: &mut SandboxState) -> Result<()> {
        let gw_net = self.read_networks().named(GATEWAY_BRIDGE).cloned();
        let gw_id = gw_net.as_ref().map(|n| n.record.id.clone());
        let on_gw = gw_id.as_ref().and_then(|id| st.endpoints.get(id));
        // One the user connected is theirs: never taken away, and it is a way out.
        if on_gw.is_some_and(|a| !a.record.for_egress) {
            return Ok(());
        }
        let published = on_gw.map(|a| a.record.requested_ports.clone());
        let mut needs = false;
        let mut has_gateway = false;
        let mut ports: Vec<PortSpec> = Vec::new();
        for a in st.endpoints.values() {
            if Some(&a.record.network) == gw_id.as_ref() || a.network.record.internal {
                continue;
            }
            let caps = a.network.driver.capabilities();
            match caps.egress {
                Egress::GatewayBridge => {
                    needs = true;
                    if !caps.publishes_ports {
                        for p in &a.record.requested_ports {
                            if !ports.contains(p) {
                                ports.push(*p);
                            }
                        }
                    }
                }
                Egress::Gateway => {
                    has_gateway |= a.join.gateway_v4.is_some() || a.join.gateway_v6.is_some();
                }
                Egress::Isolated => {}
            }
        }
        let want = needs && !has_gateway;
        match (want, published, gw_id) {
            (true, Some(now), Some(id)) if now != ports => {
                tracing::info!(sandbox = %sb.name(), "publishing other ports on the gateway bridge");
                self.disconnect_locked(sb, st, &id)?;
                self.join_gateway_bridge(sb, st, gw_net, ports)?;
            }
            (true, None, _) => self.join_gateway_bridge(sb, st, gw_net, ports)?,
            (false, Some(_), Some(id)) => {
                tracing::info!(sandbox = %sb.name(), "leaving the gateway bridge");
                self.disconnect_locked(sb, st, &id)?;
                self.publish(sb, st);
            }
            _ => {}
        }
        Ok(())
    }

    /// Connects the sandbox to the gateway bridge (made if missing), publishing `ports` there.
    fn join_gateway_bridge(
        &self,
        sb: &Sandbox,
        st: &mut SandboxState,
        gw_net: Option<Arc<Network>>,
        ports: Vec<PortSpec>,
    ) -> Result<()> {
        let net = match gw_net {
            Some(n) => n,
            None => self.gateway_bridge()?,
        };
        tracing::info!(sandbox = %sb.name(), "connecting to the gateway bridge");
        // Marked as the controller's (in its record from the start).
        let opts = EndpointOptions {
            ports,
            ..EndpointOptions::default()
        };
        self.connect_locked(sb, st, &net, opts, Vec::new(), true)?;
        Ok(())
    }

    /// The gateway bridge network: the existing one (the user's, if they made it), or a new
    /// one with Docker's options (bridge `docker_gwbridge`, inter-container traffic off,
    /// masqueraded) and a subnet from the local default pools.
    fn gateway_bridge(&self) -> Result<Arc<Network>> {
        if let Some(n) = self.read_networks().named(GATEWAY_BRIDGE) {
            return Ok(n.clone());
        }
        let req = NetworkCreate::new(GATEWAY_BRIDGE)
            .option(berth_bridge::BRIDGE_NAME, GATEWAY_BRIDGE)
            .option(berth_bridge::ENABLE_ICC, "false")
            .option(berth_bridge::ENABLE_IP_MASQUERADE, "true");
        match self.create_network_inner(req, self.driver("bridge")?) {
            Ok(_) | Err(Error::NetworkExists(_)) => self.lookup_network(GATEWAY_BRIDGE),
            Err(e) => Err(e),
        }
    }
}
