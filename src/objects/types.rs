//! The field types of the served kinds: one table that the OpenAPI
//! documents, strict field validation ([`unknown_fields`]) and strategic
//! merge patch (merge keys, [`Field::list`]) all read.
//!
//! The types are those of k8s.io/api v0.32.4 (JSON field names, and the
//! `patchStrategy`/`patchMergeKey` struct tags that strategic merge patch
//! follows), closed under reference from the served kinds plus
//! `meta.ListMeta`. Each kind's file under `objects/` holds the types only it
//! uses ([`super::Strategy::types`], at least its root type); the types kinds
//! share (pod specs, containers, volumes, metadata) are [`SHARED`] here.
//!
//! Grammar, whitespace-separated: a token without `:` names a type; each
//! following `field:type[@strategy[/mergeKey]]` token is one of its fields.
//! A type is a scalar (`string`, `integer`, `number`, `boolean`, `time`,
//! `quantity`, `int-or-string`, `object` for free-form), another type's
//! name, `[T]` for a list or `{T}` for a map with values of type T. A type
//! name is `package.Name`, the package one of [`PACKAGES`].

use super::registry::{Resource, RESOURCES};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// Package short names used in type names and the OpenAPI prefix of each
/// (`core.Pod` is `io.k8s.api.core.v1.Pod`).
pub const PACKAGES: &[(&str, &str)] = &[
    ("core", "io.k8s.api.core.v1"),
    ("apps", "io.k8s.api.apps.v1"),
    ("coordination", "io.k8s.api.coordination.v1"),
    ("meta", "io.k8s.apimachinery.pkg.apis.meta.v1"),
];

/// The scalar type names of the grammar.
pub const SCALARS: &[&str] = &[
    "string",
    "integer",
    "number",
    "boolean",
    "time",
    "quantity",
    "int-or-string",
    "object",
];

/// The types several kinds share.
pub const SHARED: &str = "
core.AWSElasticBlockStoreVolumeSource fsType:string partition:integer readOnly:boolean
        volumeID:string
core.Affinity nodeAffinity:core.NodeAffinity podAffinity:core.PodAffinity
        podAntiAffinity:core.PodAntiAffinity
core.AppArmorProfile localhostProfile:string type:string
core.AzureDiskVolumeSource cachingMode:string diskName:string diskURI:string fsType:string
        kind:string readOnly:boolean
core.AzureFileVolumeSource readOnly:boolean secretName:string shareName:string
core.CSIVolumeSource driver:string fsType:string
        nodePublishSecretRef:core.LocalObjectReference readOnly:boolean
        volumeAttributes:{string}
core.Capabilities add:[string] drop:[string]
core.CephFSVolumeSource monitors:[string] path:string readOnly:boolean secretFile:string
        secretRef:core.LocalObjectReference user:string
core.CinderVolumeSource fsType:string readOnly:boolean secretRef:core.LocalObjectReference
        volumeID:string
core.ClusterTrustBundleProjection labelSelector:meta.LabelSelector name:string
        optional:boolean path:string signerName:string
core.ConfigMapEnvSource name:string optional:boolean
core.ConfigMapKeySelector key:string name:string optional:boolean
core.ConfigMapProjection items:[core.KeyToPath] name:string optional:boolean
core.ConfigMapVolumeSource defaultMode:integer items:[core.KeyToPath] name:string
        optional:boolean
core.Container args:[string] command:[string] env:[core.EnvVar]@merge/name
        envFrom:[core.EnvFromSource] image:string imagePullPolicy:string
        lifecycle:core.Lifecycle livenessProbe:core.Probe name:string
        ports:[core.ContainerPort]@merge/containerPort readinessProbe:core.Probe
        resizePolicy:[core.ContainerResizePolicy] resources:core.ResourceRequirements
        restartPolicy:string securityContext:core.SecurityContext startupProbe:core.Probe
        stdin:boolean stdinOnce:boolean terminationMessagePath:string
        terminationMessagePolicy:string tty:boolean
        volumeDevices:[core.VolumeDevice]@merge/devicePath
        volumeMounts:[core.VolumeMount]@merge/mountPath workingDir:string
core.ContainerPort containerPort:integer hostIP:string hostPort:integer name:string
        protocol:string
core.ContainerResizePolicy resourceName:string restartPolicy:string
core.DownwardAPIProjection items:[core.DownwardAPIVolumeFile]
core.DownwardAPIVolumeFile fieldRef:core.ObjectFieldSelector mode:integer path:string
        resourceFieldRef:core.ResourceFieldSelector
core.DownwardAPIVolumeSource defaultMode:integer items:[core.DownwardAPIVolumeFile]
core.EmptyDirVolumeSource medium:string sizeLimit:quantity
core.EnvFromSource configMapRef:core.ConfigMapEnvSource prefix:string
        secretRef:core.SecretEnvSource
core.EnvVar name:string value:string valueFrom:core.EnvVarSource
core.EnvVarSource configMapKeyRef:core.ConfigMapKeySelector
        fieldRef:core.ObjectFieldSelector resourceFieldRef:core.ResourceFieldSelector
        secretKeyRef:core.SecretKeySelector
core.EphemeralContainer args:[string] command:[string] env:[core.EnvVar]@merge/name
        envFrom:[core.EnvFromSource] image:string imagePullPolicy:string
        lifecycle:core.Lifecycle livenessProbe:core.Probe name:string
        ports:[core.ContainerPort]@merge/containerPort readinessProbe:core.Probe
        resizePolicy:[core.ContainerResizePolicy] resources:core.ResourceRequirements
        restartPolicy:string securityContext:core.SecurityContext startupProbe:core.Probe
        stdin:boolean stdinOnce:boolean targetContainerName:string terminationMessagePath:string
        terminationMessagePolicy:string tty:boolean
        volumeDevices:[core.VolumeDevice]@merge/devicePath
        volumeMounts:[core.VolumeMount]@merge/mountPath workingDir:string
core.EphemeralVolumeSource volumeClaimTemplate:core.PersistentVolumeClaimTemplate
core.ExecAction command:[string]
core.FCVolumeSource fsType:string lun:integer readOnly:boolean targetWWNs:[string]
        wwids:[string]
core.FlexVolumeSource driver:string fsType:string options:{string} readOnly:boolean
        secretRef:core.LocalObjectReference
core.FlockerVolumeSource datasetName:string datasetUUID:string
core.GCEPersistentDiskVolumeSource fsType:string partition:integer pdName:string
        readOnly:boolean
core.GRPCAction port:integer service:string
core.GitRepoVolumeSource directory:string repository:string revision:string
core.GlusterfsVolumeSource endpoints:string path:string readOnly:boolean
core.HTTPGetAction host:string httpHeaders:[core.HTTPHeader] path:string port:int-or-string
        scheme:string
core.HTTPHeader name:string value:string
core.HostAlias hostnames:[string] ip:string
core.HostPathVolumeSource path:string type:string
core.ISCSIVolumeSource chapAuthDiscovery:boolean chapAuthSession:boolean fsType:string
        initiatorName:string iqn:string iscsiInterface:string lun:integer portals:[string]
        readOnly:boolean secretRef:core.LocalObjectReference targetPortal:string
core.ImageVolumeSource pullPolicy:string reference:string
core.KeyToPath key:string mode:integer path:string
core.Lifecycle postStart:core.LifecycleHandler preStop:core.LifecycleHandler
core.LifecycleHandler exec:core.ExecAction httpGet:core.HTTPGetAction sleep:core.SleepAction
        tcpSocket:core.TCPSocketAction
core.LocalObjectReference name:string
core.NFSVolumeSource path:string readOnly:boolean server:string
core.NodeAffinity
        preferredDuringSchedulingIgnoredDuringExecution:[core.PreferredSchedulingTerm]
        requiredDuringSchedulingIgnoredDuringExecution:core.NodeSelector
core.NodeSelector nodeSelectorTerms:[core.NodeSelectorTerm]
core.NodeSelectorRequirement key:string operator:string values:[string]
core.NodeSelectorTerm matchExpressions:[core.NodeSelectorRequirement]
        matchFields:[core.NodeSelectorRequirement]
core.ObjectFieldSelector apiVersion:string fieldPath:string
core.ObjectReference apiVersion:string fieldPath:string kind:string name:string
        namespace:string resourceVersion:string uid:string
core.PersistentVolumeClaimSpec accessModes:[string]
        dataSource:core.TypedLocalObjectReference dataSourceRef:core.TypedObjectReference
        resources:core.VolumeResourceRequirements selector:meta.LabelSelector
        storageClassName:string volumeAttributesClassName:string volumeMode:string
        volumeName:string
core.PersistentVolumeClaimTemplate metadata:meta.ObjectMeta
        spec:core.PersistentVolumeClaimSpec
core.PersistentVolumeClaimVolumeSource claimName:string readOnly:boolean
core.PhotonPersistentDiskVolumeSource fsType:string pdID:string
core.PodAffinity
        preferredDuringSchedulingIgnoredDuringExecution:[core.WeightedPodAffinityTerm]
        requiredDuringSchedulingIgnoredDuringExecution:[core.PodAffinityTerm]
core.PodAffinityTerm labelSelector:meta.LabelSelector matchLabelKeys:[string]
        mismatchLabelKeys:[string] namespaceSelector:meta.LabelSelector namespaces:[string]
        topologyKey:string
core.PodAntiAffinity
        preferredDuringSchedulingIgnoredDuringExecution:[core.WeightedPodAffinityTerm]
        requiredDuringSchedulingIgnoredDuringExecution:[core.PodAffinityTerm]
core.PodDNSConfig nameservers:[string] options:[core.PodDNSConfigOption] searches:[string]
core.PodDNSConfigOption name:string value:string
core.PodOS name:string
core.PodReadinessGate conditionType:string
core.PodResourceClaim name:string resourceClaimName:string resourceClaimTemplateName:string
core.PodSchedulingGate name:string
core.PodSecurityContext appArmorProfile:core.AppArmorProfile fsGroup:integer
        fsGroupChangePolicy:string runAsGroup:integer runAsNonRoot:boolean runAsUser:integer
        seLinuxChangePolicy:string seLinuxOptions:core.SELinuxOptions
        seccompProfile:core.SeccompProfile supplementalGroups:[integer]
        supplementalGroupsPolicy:string sysctls:[core.Sysctl]
        windowsOptions:core.WindowsSecurityContextOptions
core.PodSpec activeDeadlineSeconds:integer affinity:core.Affinity
        automountServiceAccountToken:boolean containers:[core.Container]@merge/name
        dnsConfig:core.PodDNSConfig dnsPolicy:string enableServiceLinks:boolean
        ephemeralContainers:[core.EphemeralContainer]@merge/name
        hostAliases:[core.HostAlias]@merge/ip hostIPC:boolean hostNetwork:boolean
        hostPID:boolean hostUsers:boolean hostname:string
        imagePullSecrets:[core.LocalObjectReference]@merge/name
        initContainers:[core.Container]@merge/name nodeName:string nodeSelector:{string}
        os:core.PodOS overhead:{quantity} preemptionPolicy:string priority:integer
        priorityClassName:string readinessGates:[core.PodReadinessGate]
        resourceClaims:[core.PodResourceClaim]@merge,retainKeys/name
        resources:core.ResourceRequirements restartPolicy:string runtimeClassName:string
        schedulerName:string schedulingGates:[core.PodSchedulingGate]@merge/name
        securityContext:core.PodSecurityContext serviceAccount:string serviceAccountName:string
        setHostnameAsFQDN:boolean shareProcessNamespace:boolean subdomain:string
        terminationGracePeriodSeconds:integer tolerations:[core.Toleration]
        topologySpreadConstraints:[core.TopologySpreadConstraint]@merge/topologyKey
        volumes:[core.Volume]@merge,retainKeys/name
core.PodTemplateSpec metadata:meta.ObjectMeta spec:core.PodSpec
core.PortworxVolumeSource fsType:string readOnly:boolean volumeID:string
core.PreferredSchedulingTerm preference:core.NodeSelectorTerm weight:integer
core.Probe exec:core.ExecAction failureThreshold:integer grpc:core.GRPCAction
        httpGet:core.HTTPGetAction initialDelaySeconds:integer periodSeconds:integer
        successThreshold:integer tcpSocket:core.TCPSocketAction
        terminationGracePeriodSeconds:integer timeoutSeconds:integer
core.ProjectedVolumeSource defaultMode:integer sources:[core.VolumeProjection]
core.QuobyteVolumeSource group:string readOnly:boolean registry:string tenant:string
        user:string volume:string
core.RBDVolumeSource fsType:string image:string keyring:string monitors:[string] pool:string
        readOnly:boolean secretRef:core.LocalObjectReference user:string
core.ResourceClaim name:string request:string
core.ResourceFieldSelector containerName:string divisor:quantity resource:string
core.ResourceRequirements claims:[core.ResourceClaim] limits:{quantity} requests:{quantity}
core.SELinuxOptions level:string role:string type:string user:string
core.ScaleIOVolumeSource fsType:string gateway:string protectionDomain:string
        readOnly:boolean secretRef:core.LocalObjectReference sslEnabled:boolean
        storageMode:string storagePool:string system:string volumeName:string
core.SeccompProfile localhostProfile:string type:string
core.SecretEnvSource name:string optional:boolean
core.SecretKeySelector key:string name:string optional:boolean
core.SecretProjection items:[core.KeyToPath] name:string optional:boolean
core.SecretVolumeSource defaultMode:integer items:[core.KeyToPath] optional:boolean
        secretName:string
core.SecurityContext allowPrivilegeEscalation:boolean appArmorProfile:core.AppArmorProfile
        capabilities:core.Capabilities privileged:boolean procMount:string
        readOnlyRootFilesystem:boolean runAsGroup:integer runAsNonRoot:boolean runAsUser:integer
        seLinuxOptions:core.SELinuxOptions seccompProfile:core.SeccompProfile
        windowsOptions:core.WindowsSecurityContextOptions
core.ServiceAccountTokenProjection audience:string expirationSeconds:integer path:string
core.SleepAction seconds:integer
core.StorageOSVolumeSource fsType:string readOnly:boolean
        secretRef:core.LocalObjectReference volumeName:string volumeNamespace:string
core.Sysctl name:string value:string
core.TCPSocketAction host:string port:int-or-string
core.Toleration effect:string key:string operator:string tolerationSeconds:integer
        value:string
core.TopologySpreadConstraint labelSelector:meta.LabelSelector matchLabelKeys:[string]
        maxSkew:integer minDomains:integer nodeAffinityPolicy:string nodeTaintsPolicy:string
        topologyKey:string whenUnsatisfiable:string
core.TypedLocalObjectReference apiGroup:string kind:string name:string
core.TypedObjectReference apiGroup:string kind:string name:string namespace:string
core.Volume awsElasticBlockStore:core.AWSElasticBlockStoreVolumeSource
        azureDisk:core.AzureDiskVolumeSource azureFile:core.AzureFileVolumeSource
        cephfs:core.CephFSVolumeSource cinder:core.CinderVolumeSource
        configMap:core.ConfigMapVolumeSource csi:core.CSIVolumeSource
        downwardAPI:core.DownwardAPIVolumeSource emptyDir:core.EmptyDirVolumeSource
        ephemeral:core.EphemeralVolumeSource fc:core.FCVolumeSource
        flexVolume:core.FlexVolumeSource flocker:core.FlockerVolumeSource
        gcePersistentDisk:core.GCEPersistentDiskVolumeSource gitRepo:core.GitRepoVolumeSource
        glusterfs:core.GlusterfsVolumeSource hostPath:core.HostPathVolumeSource
        image:core.ImageVolumeSource iscsi:core.ISCSIVolumeSource name:string
        nfs:core.NFSVolumeSource persistentVolumeClaim:core.PersistentVolumeClaimVolumeSource
        photonPersistentDisk:core.PhotonPersistentDiskVolumeSource
        portworxVolume:core.PortworxVolumeSource projected:core.ProjectedVolumeSource
        quobyte:core.QuobyteVolumeSource rbd:core.RBDVolumeSource
        scaleIO:core.ScaleIOVolumeSource secret:core.SecretVolumeSource
        storageos:core.StorageOSVolumeSource vsphereVolume:core.VsphereVirtualDiskVolumeSource
core.VolumeDevice devicePath:string name:string
core.VolumeMount mountPath:string mountPropagation:string name:string readOnly:boolean
        recursiveReadOnly:string subPath:string subPathExpr:string
core.VolumeProjection clusterTrustBundle:core.ClusterTrustBundleProjection
        configMap:core.ConfigMapProjection downwardAPI:core.DownwardAPIProjection
        secret:core.SecretProjection serviceAccountToken:core.ServiceAccountTokenProjection
core.VolumeResourceRequirements limits:{quantity} requests:{quantity}
core.VsphereVirtualDiskVolumeSource fsType:string storagePolicyID:string
        storagePolicyName:string volumePath:string
core.WeightedPodAffinityTerm podAffinityTerm:core.PodAffinityTerm weight:integer
core.WindowsSecurityContextOptions gmsaCredentialSpec:string gmsaCredentialSpecName:string
        hostProcess:boolean runAsUserName:string
meta.Condition lastTransitionTime:time message:string observedGeneration:integer
        reason:string status:string type:string
meta.LabelSelector matchExpressions:[meta.LabelSelectorRequirement] matchLabels:{string}
meta.LabelSelectorRequirement key:string operator:string values:[string]
meta.ListMeta continue:string remainingItemCount:integer resourceVersion:string
        selfLink:string
meta.ManagedFieldsEntry apiVersion:string fieldsType:string fieldsV1:object manager:string
        operation:string subresource:string time:time
meta.ObjectMeta annotations:{string} creationTimestamp:time
        deletionGracePeriodSeconds:integer deletionTimestamp:time finalizers:[string]@merge
        generateName:string generation:integer labels:{string}
        managedFields:[meta.ManagedFieldsEntry] name:string namespace:string
        ownerReferences:[meta.OwnerReference]@merge/uid resourceVersion:string selfLink:string
        uid:string
meta.OwnerReference apiVersion:string blockOwnerDeletion:boolean controller:boolean
        kind:string name:string uid:string
";

/// One field of a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// JSON name.
    pub name: &'static str,
    /// Type expression (`string`, `core.Container`, `[core.EnvVar]`).
    pub ty: &'static str,
    /// `x-kubernetes-patch-strategy` (`merge`, `retainKeys`,
    /// `merge,retainKeys`).
    pub strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub merge_key: Option<&'static str>,
}

/// How a list field merges in a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Objects, matched by the value of this field.
    Keyed(&'static str),
    /// Scalars, as a set.
    Scalars,
}

impl Field {
    /// How the field merges if it is a merging list; None when a patch
    /// replaces it whole.
    pub fn list(&self) -> Option<ListKind> {
        let merges = self
            .strategy
            .is_some_and(|s| s.split(',').any(|part| part == "merge"));
        if !merges || !self.ty.starts_with('[') {
            return None;
        }
        Some(match self.merge_key {
            Some(key) => ListKind::Keyed(key),
            None => ListKind::Scalars,
        })
    }

    /// The named type of the field's value, or of its elements or map
    /// values; None for scalars.
    pub fn referenced(&self) -> Option<&'static str> {
        referenced_type(self.ty)
    }
}

fn parse(text: &'static str, table: &mut BTreeMap<&'static str, Vec<Field>>) {
    let mut current: Option<&'static str> = None;
    for token in text.split_whitespace() {
        let Some((name, rest)) = token.split_once(':') else {
            table.entry(token).or_default();
            current = Some(token);
            continue;
        };
        let (ty, patch) = match rest.split_once('@') {
            Some((ty, patch)) => (ty, Some(patch)),
            None => (rest, None),
        };
        let (strategy, merge_key) = match patch.map(|p| p.split_once('/')) {
            Some(Some((strategy, key))) => (Some(strategy), Some(key)),
            Some(None) => (patch, None),
            None => (None, None),
        };
        if let Some(fields) = current.and_then(|t| table.get_mut(t)) {
            fields.push(Field {
                name,
                ty,
                strategy,
                merge_key,
            });
        }
    }
}

/// [`SHARED`] and every served kind's types, parsed: type name → fields, in
/// table order.
static TABLE: LazyLock<BTreeMap<&'static str, Vec<Field>>> = LazyLock::new(|| {
    let mut table = BTreeMap::new();
    parse(SHARED, &mut table);
    for resource in RESOURCES {
        parse(resource.strategy.types(), &mut table);
    }
    table
});

/// Every type, by name.
pub fn table() -> &'static BTreeMap<&'static str, Vec<Field>> {
    &TABLE
}

/// The fields of type `name`, if there is such a type.
pub fn fields(name: &str) -> Option<&'static [Field]> {
    TABLE.get(name).map(Vec::as_slice)
}

/// Field `field` of type `name`.
pub fn field(name: &str, field: &str) -> Option<&'static Field> {
    fields(name)?.iter().find(|f| f.name == field)
}

/// Whether `ty` is a scalar of the grammar.
pub fn is_scalar(ty: &str) -> bool {
    SCALARS.contains(&ty)
}

/// The named type a type expression refers to, if any (`[core.EnvVar]` →
/// `core.EnvVar`).
pub fn referenced_type(ty: &str) -> Option<&str> {
    let base = ty
        .trim_start_matches(['[', '{'])
        .trim_end_matches([']', '}']);
    (!is_scalar(base)).then_some(base)
}

/// The OpenAPI name of a type name: `core.Pod` → `io.k8s.api.core.v1.Pod`.
pub fn full_name(short: &str) -> String {
    short
        .split_once('.')
        .and_then(|(package, name)| {
            PACKAGES
                .iter()
                .find(|(p, _)| *p == package)
                .map(|(_, prefix)| format!("{prefix}.{name}"))
        })
        .unwrap_or_else(|| short.to_owned())
}

/// The root type of a resource's kind, if its strategy names one the table
/// has for the resource's group version.
pub fn kind_type(resource: &Resource) -> Option<&'static str> {
    let short = resource.strategy.type_name()?;
    let package = if resource.group.is_empty() {
        "core"
    } else {
        resource.group.split('.').next().unwrap_or(resource.group)
    };
    let expected = format!(
        "io.k8s.api.{package}.{}.{}",
        resource.version, resource.kind
    );
    TABLE
        .get_key_value(short)
        .filter(|_| full_name(short) == expected)
        .map(|(name, _)| *name)
}

/// Fields of `obj` (an object of `resource`) that its type does not have,
/// as dotted paths (`spec.replcas`, `spec.template.spec.containers[0].imge`),
/// for `fieldValidation=Strict`. Empty when the kind has no type.
pub fn unknown_fields(resource: &Resource, obj: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    if let Some(kind) = kind_type(resource) {
        walk(kind, obj, "", &mut unknown, 0);
    }
    unknown
}

/// Deepest nesting walked (objects deeper than this are not checked).
const WALK_DEPTH: usize = 64;

fn walk(ty: &str, value: &Value, path: &str, unknown: &mut Vec<String>, depth: usize) {
    if depth > WALK_DEPTH || value.is_null() {
        return;
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        if let Some(items) = value.as_array() {
            for (i, item) in items.iter().enumerate() {
                walk(inner, item, &format!("{path}[{i}]"), unknown, depth + 1);
            }
        }
        return;
    }
    if let Some(inner) = ty.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
        if let Some(map) = value.as_object() {
            for (key, item) in map {
                walk(inner, item, &format!("{path}[{key}]"), unknown, depth + 1);
            }
        }
        return;
    }
    let (Some(fields), Some(map)) = (TABLE.get(ty), value.as_object()) else {
        return;
    };
    for (key, item) in map {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match fields.iter().find(|f| f.name == key) {
            Some(field) => walk(field.ty, item, &at, unknown, depth + 1),
            None => unknown.push(at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_referenced_type_is_defined_once() {
        let mut seen = std::collections::BTreeSet::new();
        let texts = std::iter::once(SHARED).chain(RESOURCES.iter().map(|r| r.strategy.types()));
        for text in texts {
            for token in text.split_whitespace().filter(|t| !t.contains(':')) {
                assert!(seen.insert(token), "{token} is defined twice");
            }
        }
        for (name, fields) in table() {
            for field in fields {
                if let Some(referenced) = field.referenced() {
                    assert!(
                        fields_of(referenced),
                        "{name}.{} refers to undefined {referenced}",
                        field.name
                    );
                }
            }
        }
        for resource in RESOURCES {
            assert!(
                kind_type(resource).is_some(),
                "{} has no type",
                resource.kind
            );
        }
    }

    fn fields_of(name: &str) -> bool {
        fields(name).is_some()
    }

    #[test]
    fn merge_keys_come_from_the_tags() {
        let containers = field("core.PodSpec", "containers").expect("containers");
        assert_eq!(containers.list(), Some(ListKind::Keyed("name")));
        assert_eq!(containers.referenced(), Some("core.Container"));
        let finalizers = field("meta.ObjectMeta", "finalizers").expect("finalizers");
        assert_eq!(finalizers.list(), Some(ListKind::Scalars));
        let volumes = field("core.PodSpec", "volumes").expect("volumes");
        assert_eq!(volumes.list(), Some(ListKind::Keyed("name")));
        let strategy = field("apps.DeploymentSpec", "strategy").expect("strategy");
        assert_eq!(strategy.list(), None);
        let args = field("core.Container", "args").expect("args");
        assert_eq!(args.list(), None);
    }
}
