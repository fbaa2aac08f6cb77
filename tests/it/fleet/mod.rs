//! Fleet mode (issue 11) against a real etcd member on loopback (Debian `etcd-server`): the
//! JSON-gateway client, replicas in-process and as real processes, and the fleet load figures.

pub(crate) mod etcd_server;
mod load;
pub(crate) mod processes;
mod replicas;
mod store;
