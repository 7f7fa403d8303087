//! The labels and annotations kubesu puts on what it creates, and reads back
//! to find it again: the one vocabulary the run, `gc`, `list`, `revoke` and
//! the Spark policy share.

/// On every object kubesu creates: how `gc`, `list` and the ownership check
/// find kubesu's objects.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubesu");

/// The run id, on the lease, its RoleBinding, a per-run namespace and every
/// driver and executor pod of a run. Users may set no label in its domain
/// (the part up to '/'), so that the labels kubesu selects and cleans up by
/// cannot be forged or overwritten.
pub const RUN_LABEL: &str = "kubesu.io/run";

/// The end user, as a label value (see `naming::user_label`).
pub const USER_LABEL: &str = "kubesu.io/user";

/// The lease record, as annotations on the run's ServiceAccount.
pub mod annotation {
    pub const EXPIRES: &str = "kubesu.io/expires";
    pub const USER: &str = "kubesu.io/user";
    pub const CALLER: &str = "kubesu.io/caller";
    pub const HOST: &str = "kubesu.io/host";
    pub const PID: &str = "kubesu.io/pid";
    pub const PROCESS_START: &str = "kubesu.io/process-start";
    pub const BOOT_ID: &str = "kubesu.io/boot-id";
    pub const COMMAND: &str = "kubesu.io/command";
}

/// Application ids kubesu gives start with this; `gc` maps them back to runs.
pub const APP_ID_PREFIX: &str = "spark-kubesu-";

/// The label Spark puts the application id in.
pub const APP_SELECTOR_LABEL: &str = "spark-app-selector";

/// Spark's label for what a pod is, and its value on a driver pod.
pub const SPARK_ROLE_LABEL: &str = "spark-role";
pub const DRIVER_ROLE: &str = "driver";

/// The application id kubesu gives a run's Spark application.
pub fn app_id(run: &str) -> String {
    format!("{APP_ID_PREFIX}{run}")
}
