//! Fleet mode against a real etcd member on loopback (Debian `etcd-server`): the
//! JSON-gateway client, replicas in-process and as real processes, and the fleet load figures.

mod chaos;
mod etcd_auth;
mod etcd_fakes;
pub(crate) mod etcd_server;
mod etcd_watch;
mod kit;
mod load;
mod members;
mod partition;
pub(crate) mod processes;
mod replicas;
mod safety;
mod store;
mod store_faults;
