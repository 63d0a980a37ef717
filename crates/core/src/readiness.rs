//! Parts of a service that report their own readiness beside its
//! dependencies: the worker's queue consumer is "up" only while it is
//! registered with Redis and taking jobs, which a PING cannot tell.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// What a component last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentState {
    /// Not up yet since the process started.
    Starting,
    Up,
    /// Down, and why (for `/readyz`).
    Down(String),
}

/// The reporting handle of one component.
#[derive(Clone)]
pub struct Component {
    name: &'static str,
    state: Arc<watch::Sender<ComponentState>>,
}

impl Component {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn set_up(&self) {
        self.state.send_if_modified(|state| {
            let changed = *state != ComponentState::Up;
            *state = ComponentState::Up;
            changed
        });
    }

    pub fn set_down(&self, reason: impl Into<String>) {
        let _ = self.state.send_replace(ComponentState::Down(reason.into()));
    }

    pub fn state(&self) -> ComponentState {
        self.state.borrow().clone()
    }

    /// The component's readiness; one still starting gets up to `wait` to
    /// come up, so a probe right after start-up does not fail for nothing.
    pub async fn check(&self, wait: Duration) -> Result<(), String> {
        let mut changes = self.state.subscribe();
        let settled = tokio::time::timeout(
            wait,
            changes.wait_for(|state| *state != ComponentState::Starting),
        )
        .await;
        let state = match settled {
            Ok(Ok(state)) => state.clone(),
            _ => self.state(),
        };
        match state {
            ComponentState::Up => Ok(()),
            ComponentState::Starting => Err("starting".to_owned()),
            ComponentState::Down(reason) => Err(reason),
        }
    }
}

/// The components of one service, in the order they were added.
#[derive(Clone, Default)]
pub struct Components {
    list: Arc<Mutex<Vec<Component>>>,
}

impl Components {
    /// Adds (or returns the existing) component `name`, starting.
    pub fn add(&self, name: &'static str) -> Component {
        let Ok(mut list) = self.list.lock() else {
            return new_component(name);
        };
        if let Some(existing) = list.iter().find(|c| c.name == name) {
            return existing.clone();
        }
        let component = new_component(name);
        list.push(component.clone());
        component
    }

    pub fn all(&self) -> Vec<Component> {
        self.list
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

fn new_component(name: &'static str) -> Component {
    let (state, _) = watch::channel(ComponentState::Starting);
    Component {
        name,
        state: Arc::new(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_starting_component_gets_a_moment_then_reports_its_state() {
        let components = Components::default();
        let queue = components.add("queue");
        assert_eq!(
            queue.check(Duration::from_millis(10)).await,
            Err("starting".to_owned())
        );
        let later = queue.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.set_up();
        });
        assert_eq!(queue.check(Duration::from_secs(2)).await, Ok(()));
        components.add("queue").set_down("Redis gone");
        assert_eq!(
            queue.check(Duration::from_secs(2)).await,
            Err("Redis gone".to_owned())
        );
        assert_eq!(components.all().len(), 1);
    }
}
