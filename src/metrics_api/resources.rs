//! Kubernetes resources as the metrics APIs name them, and the mapping between
//! series labels and resources (prometheus-adapter's `resources` section).
//!
//! Sextant has no RESTMapper (it does not talk to the Kubernetes API), so the
//! built-in resources are a table: singular, plural, group, kind, whether
//! namespaced. Other resources are taken as written, with a plural made by
//! appending `s` and a kind made by capitalizing the singular.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

/// A resource: plural lowercase name and API group (`""` for core).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

/// A built-in resource: singular, plural, group, kind, API version, namespaced.
struct Known {
    singular: &'static str,
    plural: &'static str,
    group: &'static str,
    kind: &'static str,
    version: &'static str,
    namespaced: bool,
}

const fn known(
    singular: &'static str,
    plural: &'static str,
    group: &'static str,
    kind: &'static str,
    version: &'static str,
    namespaced: bool,
) -> Known {
    Known {
        singular,
        plural,
        group,
        kind,
        version,
        namespaced,
    }
}

const KNOWN: &[Known] = &[
    known("pod", "pods", "", "Pod", "v1", true),
    known("namespace", "namespaces", "", "Namespace", "v1", false),
    known("node", "nodes", "", "Node", "v1", false),
    known("service", "services", "", "Service", "v1", true),
    known("endpoints", "endpoints", "", "Endpoints", "v1", true),
    known(
        "persistentvolumeclaim",
        "persistentvolumeclaims",
        "",
        "PersistentVolumeClaim",
        "v1",
        true,
    ),
    known(
        "persistentvolume",
        "persistentvolumes",
        "",
        "PersistentVolume",
        "v1",
        false,
    ),
    known(
        "replicationcontroller",
        "replicationcontrollers",
        "",
        "ReplicationController",
        "v1",
        true,
    ),
    known(
        "deployment",
        "deployments",
        "apps",
        "Deployment",
        "v1",
        true,
    ),
    known(
        "statefulset",
        "statefulsets",
        "apps",
        "StatefulSet",
        "v1",
        true,
    ),
    known("daemonset", "daemonsets", "apps", "DaemonSet", "v1", true),
    known(
        "replicaset",
        "replicasets",
        "apps",
        "ReplicaSet",
        "v1",
        true,
    ),
    known("job", "jobs", "batch", "Job", "v1", true),
    known("cronjob", "cronjobs", "batch", "CronJob", "v1", true),
    known(
        "ingress",
        "ingresses",
        "networking.k8s.io",
        "Ingress",
        "v1",
        true,
    ),
    known(
        "horizontalpodautoscaler",
        "horizontalpodautoscalers",
        "autoscaling",
        "HorizontalPodAutoscaler",
        "v2",
        true,
    ),
];

impl GroupResource {
    /// The resource named by `resource` (singular or plural, any case) in
    /// `group`; an empty group also finds a built-in resource of another
    /// group (`deployment` is `deployments.apps`), as a RESTMapper would.
    pub fn resolve(group: &str, resource: &str) -> GroupResource {
        let resource = resource.to_ascii_lowercase();
        let group = group.to_ascii_lowercase();
        let found = KNOWN
            .iter()
            .filter(|k| k.singular == resource || k.plural == resource)
            .find(|k| k.group == group || group.is_empty());
        match found {
            Some(k) => GroupResource {
                group: k.group.to_string(),
                resource: k.plural.to_string(),
            },
            None => GroupResource {
                group,
                resource: if resource.ends_with('s') {
                    resource
                } else {
                    format!("{resource}s")
                },
            },
        }
    }

    /// Parses the API's `plural[.group]` form (`deployments.apps`, `pods`).
    pub fn parse(text: &str) -> GroupResource {
        match text.split_once('.') {
            Some((resource, group)) => GroupResource::resolve(group, resource),
            None => GroupResource::resolve("", text),
        }
    }

    /// A built-in resource only (what a RESTMapper would know); label
    /// templates map labels to these alone, so that `instance` or `container`
    /// labels name nothing.
    pub fn lookup(group: &str, resource: &str) -> Option<GroupResource> {
        let resolved = GroupResource::resolve(group, resource);
        resolved.known().map(|_| resolved)
    }

    pub fn pods() -> GroupResource {
        GroupResource::resolve("", "pods")
    }

    pub fn namespaces() -> GroupResource {
        GroupResource::resolve("", "namespaces")
    }

    fn known(&self) -> Option<&'static Known> {
        KNOWN
            .iter()
            .find(|k| k.plural == self.resource && k.group == self.group)
    }

    /// The singular name (`pod`): what label templates and kube-state-metrics
    /// use.
    pub fn singular(&self) -> String {
        match self.known() {
            Some(k) => k.singular.to_string(),
            None => self
                .resource
                .strip_suffix('s')
                .unwrap_or(&self.resource)
                .to_string(),
        }
    }

    /// The kind (`Pod`), for `describedObject`.
    pub fn kind(&self) -> String {
        match self.known() {
            Some(k) => k.kind.to_string(),
            None => {
                let singular = self.singular();
                let mut chars = singular.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => String::new(),
                }
            }
        }
    }

    /// The `apiVersion` of `describedObject` (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        let version = self.known().map_or("v1", |k| k.version);
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// Whether objects of this resource live in a namespace; unknown
    /// resources are taken as namespaced.
    pub fn namespaced(&self) -> bool {
        self.known().is_none_or(|k| k.namespaced)
    }
}

impl fmt::Display for GroupResource {
    /// `plural[.group]`, as in discovery names and paths.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// Labels <-> resources for one rule: explicit overrides first, then the
/// template (`<<.Resource>>`, `kube_<<.Group>>_<<.Resource>>`).
#[derive(Debug, Clone)]
pub struct ResourceMapper {
    overrides: BTreeMap<String, GroupResource>,
    template: Option<LabelTemplate>,
}

#[derive(Debug, Clone)]
struct LabelTemplate {
    text: String,
    /// The template as an anchored regex with `group` and `resource` captures.
    pattern: Regex,
}

impl ResourceMapper {
    /// # Errors
    /// The template uses something other than `<<.Group>>` and `<<.Resource>>`.
    pub fn new(
        overrides: BTreeMap<String, GroupResource>,
        template: Option<&str>,
    ) -> Result<ResourceMapper, String> {
        let template = template
            .map(|text| {
                let mut pattern = String::from("^");
                for part in split_template(text)? {
                    match part {
                        Part::Text(t) => pattern.push_str(&regex::escape(t)),
                        Part::Field("Group") => pattern.push_str("(?P<group>[a-zA-Z0-9_]*?)"),
                        Part::Field("Resource") => pattern.push_str("(?P<resource>[a-zA-Z0-9]+)"),
                        Part::Field(other) => {
                            return Err(format!(
                                "resources.template {text:?}: unknown field .{other} (only .Group and .Resource)"
                            ));
                        }
                    }
                }
                pattern.push('$');
                let pattern = Regex::new(&pattern)
                    .map_err(|e| format!("resources.template {text:?}: {e}"))?;
                Ok(LabelTemplate {
                    text: text.to_string(),
                    pattern,
                })
            })
            .transpose()?;
        Ok(ResourceMapper {
            overrides,
            template,
        })
    }

    /// The resource a label names, if any.
    pub fn resource_for_label(&self, label: &str) -> Option<GroupResource> {
        if let Some(resource) = self.overrides.get(label) {
            return Some(resource.clone());
        }
        let template = self.template.as_ref()?;
        let captures = template.pattern.captures(label)?;
        let resource = captures.name("resource")?.as_str();
        let group = captures
            .name("group")
            .map_or("", |g| g.as_str())
            .replace('_', ".");
        GroupResource::lookup(&group, resource)
    }

    /// The label that names `resource`, if any.
    pub fn label_for_resource(&self, resource: &GroupResource) -> Option<String> {
        if let Some((label, _)) = self.overrides.iter().find(|(_, r)| *r == resource) {
            return Some(label.clone());
        }
        let template = self.template.as_ref()?;
        let mut label = String::new();
        for part in split_template(&template.text).ok()? {
            match part {
                Part::Text(t) => label.push_str(t),
                Part::Field("Group") => label.push_str(&resource.group.replace('.', "_")),
                Part::Field(_) => label.push_str(&resource.singular()),
            }
        }
        Some(label)
    }
}

/// A piece of a `<<...>>` template.
#[derive(Debug, PartialEq)]
pub enum Part<'a> {
    Text(&'a str),
    /// `<<.Name>>`, without the dot.
    Field(&'a str),
}

/// Splits a template into text and `<<.Field>>` actions (spaces inside the
/// delimiters allowed).
///
/// # Errors
/// An unclosed `<<`, or an action that is not a plain field.
pub fn split_template(text: &str) -> Result<Vec<Part<'_>>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<<") {
        if start > 0 {
            parts.push(Part::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find(">>") else {
            return Err(format!("template {text:?}: unclosed action \"<<\""));
        };
        let action = after[..end].trim();
        let field = action
            .strip_prefix('.')
            .filter(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match field {
            Some(field) => parts.push(Part::Field(field)),
            None => {
                return Err(format!(
                    "template {text:?}: unsupported action <<{action}>> (only fields such as <<.Series>>)"
                ));
            }
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_singular_plural_and_groups() {
        let pods = GroupResource::resolve("", "pod");
        assert_eq!(pods.to_string(), "pods");
        assert_eq!(pods.kind(), "Pod");
        assert_eq!(pods.api_version(), "v1");
        let deployments = GroupResource::resolve("", "deployment");
        assert_eq!(deployments.to_string(), "deployments.apps");
        assert_eq!(deployments.api_version(), "apps/v1");
        assert_eq!(deployments.singular(), "deployment");
        assert_eq!(GroupResource::parse("deployments.apps"), deployments);
        assert_eq!(
            GroupResource::parse("ingresses.networking.k8s.io").kind(),
            "Ingress"
        );
        let custom = GroupResource::resolve("example.com", "widget");
        assert_eq!(custom.to_string(), "widgets.example.com");
        assert_eq!(custom.kind(), "Widget");
        assert_eq!(custom.api_version(), "example.com/v1");
        assert!(!GroupResource::namespaces().namespaced());
        assert!(GroupResource::pods().namespaced());
    }

    #[test]
    fn maps_labels_through_overrides_and_templates() {
        let overrides = [(
            "microservice".to_string(),
            GroupResource::resolve("apps", "deployment"),
        )]
        .into_iter()
        .collect();
        let mapper = ResourceMapper::new(overrides, Some("<<.Resource>>")).unwrap();
        assert_eq!(
            mapper.resource_for_label("pod"),
            Some(GroupResource::pods())
        );
        assert_eq!(
            mapper
                .resource_for_label("microservice")
                .unwrap()
                .to_string(),
            "deployments.apps"
        );
        assert_eq!(
            mapper.label_for_resource(&GroupResource::resolve("apps", "deployments")),
            Some("microservice".into())
        );
        assert_eq!(
            mapper.label_for_resource(&GroupResource::namespaces()),
            Some("namespace".into())
        );

        let kube =
            ResourceMapper::new(BTreeMap::new(), Some("kube_<<.Group>>_<<.Resource>>")).unwrap();
        assert_eq!(
            kube.resource_for_label("kube_apps_deployment")
                .unwrap()
                .to_string(),
            "deployments.apps"
        );
        assert_eq!(
            kube.label_for_resource(&GroupResource::resolve("apps", "deployment")),
            Some("kube_apps_deployment".into())
        );
        assert_eq!(kube.resource_for_label("pod"), None);
        assert_eq!(mapper.resource_for_label("instance"), None);
        assert_eq!(mapper.resource_for_label("container"), None);
        assert!(ResourceMapper::new(BTreeMap::new(), Some("<<.Nope>>")).is_err());
    }

    #[test]
    fn splits_templates() {
        assert_eq!(
            split_template("sum(<<.Series>>{<< .LabelMatchers >>})").unwrap(),
            vec![
                Part::Text("sum("),
                Part::Field("Series"),
                Part::Text("{"),
                Part::Field("LabelMatchers"),
                Part::Text("})"),
            ]
        );
        assert!(split_template("<<.Series").is_err());
        assert!(split_template("<<range .GroupBySlice>>").is_err());
    }
}
