//! Fleet mode (issue 11) against a real etcd member on loopback (Debian `etcd-server`): the
//! JSON-gateway client, replicas in-process and as real processes, and the fleet load figures.

mod etcd_auth;
mod etcd_fakes;
mod etcd_server;
mod etcd_watch;
mod load;
mod processes;
mod replicas;
mod store;
