//! The permission catalogue: every RBAC rule kubesu's own identity needs
//! (exactly the API calls kubesu makes) and every rule a run's Spark driver
//! gets in its namespace. `kubesu rbac` prints manifests from it and
//! `kubesu check` reviews it, so what is granted and what is checked cannot
//! drift apart.

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Which objects of its resources a permission covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    /// Every object.
    Any,
    /// Only the configured `[cluster] cluster_role`.
    ClusterRole,
}

/// One RBAC rule: these verbs on these resources of one API group.
#[derive(Debug, Clone, Copy)]
pub struct Permission {
    /// The API group; "" is the core group.
    pub group: &'static str,
    /// Resources; "resource/subresource" for a subresource.
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub names: Names,
    /// Why kubesu needs it: a comment in the manifests, a hint in `check`.
    pub why: &'static str,
}

impl Permission {
    /// Every (resource, verb) pair the rule grants, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.resources
            .iter()
            .flat_map(|r| self.verbs.iter().map(move |v| (*r, *v)))
    }

    /// (group, resource, verb) of the rule's first grant: what kubesu asks
    /// about to see that a binding to it took effect.
    pub fn probe(&self) -> (&'static str, &'static str, &'static str) {
        (self.group, self.resources[0], self.verbs[0])
    }

    /// "namespaces", "clusterroles.rbac.authorization.k8s.io", ...
    pub fn label(&self) -> String {
        let resources = self.resources.join(",");
        if self.group.is_empty() {
            resources
        } else {
            format!("{resources}.{}", self.group)
        }
    }
}

/// What a Spark driver makes in its namespace.
const SPARK_RESOURCES: &[&str] = &["pods", "services", "configmaps", "persistentvolumeclaims"];

/// What kubesu's own identity needs, and nothing more. Namespaced resources
/// are granted cluster-wide: kubesu creates objects in any namespace its
/// template names.
pub const KUBESU_PERMISSIONS: &[Permission] = &[
    Permission {
        group: "",
        resources: &["namespaces"],
        verbs: &["get", "list", "create", "patch", "delete"],
        names: Names::Any,
        why: "create the run's namespace if absent and check that it is kubesu's; \
              put its Pod Security and configured labels back (server-side apply); \
              find and delete per-run namespaces (run, gc)",
    },
    Permission {
        group: "",
        resources: &["resourcequotas", "limitranges"],
        verbs: &["list", "create", "patch"],
        names: Names::Any,
        why: "apply [namespace] quota and limits to kubesu's namespaces at each run \
              (server-side apply: a patch, authorized as a create when the object is absent); \
              `kubesu check` compares them with the config",
    },
    Permission {
        group: "networking.k8s.io",
        resources: &["networkpolicies"],
        verbs: &["list", "create", "patch"],
        names: Names::Any,
        why: "apply the isolating NetworkPolicy ([namespace] isolate) at each run; \
              `kubesu check` compares it with the config",
    },
    Permission {
        group: "",
        resources: &["serviceaccounts"],
        verbs: &["list", "create", "patch", "delete"],
        names: Names::Any,
        why: "each run's ServiceAccount is its lease: created for the run, \
              its expiry moved when the token is renewed, listed by gc and list, \
              deleted on revocation",
    },
    Permission {
        group: "",
        resources: &["serviceaccounts/token"],
        verbs: &["create"],
        names: Names::Any,
        why: "mint the run's short-lived token (TokenRequest)",
    },
    Permission {
        group: RBAC_GROUP,
        resources: &["rolebindings"],
        verbs: &["list", "create", "delete"],
        names: Names::Any,
        why: "bind the Spark ClusterRole to the run's ServiceAccount in its namespace only",
    },
    Permission {
        group: RBAC_GROUP,
        resources: &["clusterroles"],
        verbs: &["get", "bind"],
        names: Names::ClusterRole,
        why: "bind: create those RoleBindings without holding the role's permissions; \
              get: `kubesu check` verifies that the role exists",
    },
    Permission {
        group: "",
        resources: &["pods", "configmaps", "persistentvolumeclaims"],
        verbs: &["list", "deletecollection"],
        names: Names::Any,
        why: "clean up what a run left in its namespace: by its label, and pods also by the \
              ServiceAccount they run as (revoke, gc)",
    },
    Permission {
        group: "",
        resources: &["pods/log"],
        verbs: &["get"],
        names: Names::Any,
        why: "keep each Spark driver's log ([spark] driver_logs) before revocation deletes \
              its pod, limited to [spark] driver_log_max bytes",
    },
    Permission {
        group: "",
        resources: &["services"],
        verbs: &["list", "delete"],
        names: Names::Any,
        why: "clean up the Services Spark left, one by one: Services have no deletecollection \
              before Kubernetes 1.22 (revoke, gc)",
    },
    Permission {
        group: "authorization.k8s.io",
        resources: &["subjectaccessreviews"],
        verbs: &["create"],
        names: Names::Any,
        why: "wait until the run's RoleBinding is effective before the command starts: the API \
              server's authorizer sees new bindings a moment after they are made",
    },
    Permission {
        group: "authorization.k8s.io",
        resources: &["selfsubjectaccessreviews"],
        verbs: &["create"],
        names: Names::Any,
        why: "`kubesu check` asks the API server whether kubesu holds these permissions",
    },
    Permission {
        group: "admissionregistration.k8s.io",
        resources: &[
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
        ],
        verbs: &["get"],
        names: Names::Any,
        why: "kubesu check: are kubesu's admission policies (kubesu rbac --admission) installed, \
              failing closed and bound",
    },
];

/// What a Spark driver needs in its own namespace (and nothing else): bound
/// to each run's ServiceAccount there.
pub const SPARK_PERMISSIONS: &[Permission] = &[
    Permission {
        group: "",
        resources: SPARK_RESOURCES,
        verbs: &[
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ],
        names: Names::Any,
        why: "the driver runs its executors as pods, with services, configmaps and volumes",
    },
    Permission {
        group: "",
        resources: &["pods/log"],
        verbs: &["get", "list", "watch"],
        names: Names::Any,
        why: "executor logs",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// That these are exactly the calls kubesu makes is tests/rbac.rs's
    /// proof (it records them against the bed); here, the catalogue's shape.
    #[test]
    fn kubesu_permissions_are_narrow() {
        let granted: Vec<String> = KUBESU_PERMISSIONS
            .iter()
            .flat_map(|p| p.pairs().map(move |(r, v)| format!("{v} {r}.{}", p.group)))
            .collect();
        // No duplicates, and nothing broader than the resources named.
        let mut unique = granted.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), granted.len());
        for p in KUBESU_PERMISSIONS {
            assert!(!p.verbs.contains(&"*") && !p.resources.contains(&"*"));
            assert!(!p.verbs.contains(&"escalate") && !p.verbs.contains(&"impersonate"));
            assert!(!p.verbs.contains(&"watch") && !p.verbs.contains(&"update"));
        }
        // Only ClusterRoles are restricted by name, and they are.
        for p in KUBESU_PERMISSIONS {
            assert_eq!(
                p.names == Names::ClusterRole,
                p.resources == ["clusterroles"],
                "{}",
                p.label()
            );
        }
    }
}
