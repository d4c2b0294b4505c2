//! The broker's nodes as a participant goes through them: at start the first that answers, and
//! when a node fails before its connection is ready, the next one.

use crate::runtime::Target;

/// The nodes, and which is tried next.
pub(crate) struct Nodes {
    /// In the order they are tried; at least one.
    targets: Vec<Target>,
    current: usize,
    /// Whether the connection to the current node got ready.
    current_ready: bool,
    /// Nodes that failed in a row since one was last ready.
    failures: usize,
}

impl Nodes {
    pub(crate) fn new(targets: Vec<Target>) -> Self {
        assert!(!targets.is_empty(), "settings always name a node");
        Nodes {
            targets,
            current: 0,
            current_ready: false,
            failures: 0,
        }
    }

    /// The node to connect to now.
    pub(crate) fn connecting(&mut self) -> Target {
        self.current_ready = false;
        self.targets[self.current].clone()
    }

    /// The current node's connection is ready.
    pub(crate) fn ready(&mut self) {
        self.current_ready = true;
        self.failures = 0;
    }

    /// The connection to the current node ended. If it never got ready the next node is tried
    /// next. Returns whether every node has now failed in a row.
    pub(crate) fn ended(&mut self) -> bool {
        if !self.current_ready {
            self.current = (self.current + 1) % self.targets.len();
            self.failures += 1;
        }
        self.failures >= self.targets.len()
    }

    /// The node connected to, or being connected to.
    pub(crate) fn current(&self) -> &Target {
        &self.targets[self.current]
    }

    /// `host:port` of every node, for errors.
    pub(crate) fn list(&self) -> String {
        let nodes: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{}:{}", t.host, t.port))
            .collect();
        nodes.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> Target {
        Target {
            host: "127.0.0.1".into(),
            port,
            tls: None,
        }
    }

    #[test]
    fn moves_on_from_a_node_that_fails_before_it_is_ready_and_only_then() {
        let mut nodes = Nodes::new(vec![node(1), node(2)]);
        assert_eq!(nodes.connecting().port, 1);
        nodes.ready();
        assert!(
            !nodes.ended(),
            "lost after it was ready: the same node first"
        );
        assert_eq!(nodes.connecting().port, 1);
        assert!(!nodes.ended(), "refused: one failure of two");
        assert_eq!(nodes.connecting().port, 2);
        nodes.ready();
        assert!(!nodes.ended());
        assert_eq!(nodes.connecting().port, 2);
        assert!(!nodes.ended());
        assert_eq!(nodes.connecting().port, 1);
        assert!(nodes.ended(), "both failed in a row");
        assert_eq!(nodes.list(), "127.0.0.1:1, 127.0.0.1:2");
    }
}
