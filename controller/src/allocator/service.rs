//! Reading a `Service` (untrusted input from the API server or files) into what
//! the allocator needs: whether it is ours, which families and IPs it wants,
//! which pool it asks for, how it may share, and what its status holds.
//! Nothing here panics on malformed input: problems become a pending reason.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use ferrolb_config::addr::Family;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::jiff::Timestamp;

use super::sharing::ShareInfo;

/// Annotations requesting specific IPs, in order of precedence.
pub const LOAD_BALANCER_IPS_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// Annotations requesting a pool, in order of precedence.
pub const ADDRESS_POOL_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/address-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// Annotations naming a sharing key, in order of precedence.
pub const ALLOW_SHARED_IP_ANNOTATIONS: [&str; 3] = [
    "ferrolb.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];
/// The annotation the controller writes with the pool an IP came from
/// ([`super::ServiceOutcome::pool`] is its value).
pub const ALLOCATED_FROM_POOL_ANNOTATION: &str = "ferrolb.io/ip-allocated-from-pool";

/// A Service's identity: namespace and name. Displays as `namespace/name`.
/// Cheap to clone (the strings are shared).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a Service object; a Service without a namespace is in `default`.
    pub fn of(svc: &Service) -> ServiceKey {
        ServiceKey::new(
            svc.metadata.namespace.as_deref().unwrap_or("default"),
            svc.metadata.name.as_deref().unwrap_or_default(),
        )
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Why a Service present in the snapshot is not handled by this allocator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotOurs {
    /// `spec.type` is not `LoadBalancer` (the type, or None when unset).
    NotLoadBalancer(Option<String>),
    /// `spec.loadBalancerClass` is not the one this allocator handles
    /// (the Service's class, None when unset).
    OtherClass(Option<String>),
    /// `metadata.deletionTimestamp` is set.
    Deleting,
}

impl fmt::Display for NotOurs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotOurs::NotLoadBalancer(Some(t)) => {
                write!(f, "the Service is of type {t}, not LoadBalancer")
            }
            NotOurs::NotLoadBalancer(None) => {
                f.write_str("the Service has no type (ClusterIP), not LoadBalancer")
            }
            NotOurs::OtherClass(Some(c)) => {
                write!(f, "the Service's loadBalancerClass is {c:?}")
            }
            NotOurs::OtherClass(None) => f.write_str("the Service has no loadBalancerClass"),
            NotOurs::Deleting => f.write_str("the Service is being deleted"),
        }
    }
}

/// How many families the Service wants (`spec.ipFamilyPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    Single,
    PreferDual,
    RequireDual,
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Policy::Single => "SingleStack",
            Policy::PreferDual => "PreferDualStack",
            Policy::RequireDual => "RequireDualStack",
        })
    }
}

/// The families a Service wants, in its order: one, or two different ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Families {
    list: [Family; 2],
    len: u8,
}

impl Families {
    fn one(f: Family) -> Families {
        Families {
            list: [f, other(f)],
            len: 1,
        }
    }

    fn two(first: Family) -> Families {
        Families {
            list: [first, other(first)],
            len: 2,
        }
    }
}

impl std::ops::Deref for Families {
    type Target = [Family];
    fn deref(&self) -> &[Family] {
        &self.list[..self.len as usize]
    }
}

/// What a Service asks of the allocator, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub(crate) policy: Policy,
    /// Families in the Service's order: one for SingleStack, two otherwise.
    pub(crate) families: Families,
    pub(crate) share: Arc<ShareInfo>,
    /// Requested IPs and pool, when there are any (most Services have none:
    /// they cost nothing then).
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, PartialEq)]
struct Extra {
    /// Requested IPs, in family order.
    ips: Box<[IpAddr]>,
    pool: Option<Box<str>>,
}

impl Request {
    /// Requested IPs, in family order; empty when none are requested.
    pub(crate) fn ips(&self) -> &[IpAddr] {
        self.extra.as_ref().map_or(&[], |e| &e.ips)
    }

    /// The requested pool, if any.
    pub(crate) fn pool(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.pool.as_deref())
    }

    /// Sorts IPs into the Service's family order.
    pub(crate) fn in_family_order(&self, ips: &mut [IpAddr]) {
        ips.sort_by_key(|ip| {
            let f = Family::of(ip);
            self.families.iter().position(|x| *x == f).unwrap_or(2)
        });
    }
}

/// `spec.type` and, for a LoadBalancer, `spec.loadBalancerClass`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    LoadBalancer {
        class: Option<Box<str>>,
    },
    /// Another type (`""` when unset, which means ClusterIP).
    Other {
        type_: Box<str>,
    },
}

/// `metadata.creationTimestamp` in 16 bytes, ordered as `Option<Timestamp>`
/// (missing first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Created {
    seconds: i64,
    /// -1 when missing (with `seconds` at its minimum, below any real time).
    nanos: i32,
}

impl Created {
    fn of(t: Option<Timestamp>) -> Created {
        match t {
            Some(t) => Created {
                seconds: t.as_second(),
                nanos: t.subsec_nanosecond(),
            },
            None => Created {
                seconds: i64::MIN,
                nanos: -1,
            },
        }
    }
}

/// `metadata.uid`: kept as 16 bytes when it is a UUID (as the API server
/// writes it), as text otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uid {
    Uuid([u8; 16]),
    Other(Box<str>),
}

impl Uid {
    pub fn parse(s: &str) -> Uid {
        let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
        let dashes_ok = s.len() == 36
            && s.char_indices()
                .all(|(i, c)| (c == '-') == matches!(i, 8 | 13 | 18 | 23));
        if dashes_ok
            && hex.len() == 32
            && hex
                .iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        {
            let mut out = [0u8; 16];
            for (i, pair) in hex.chunks(2).enumerate() {
                let digit = |b: u8| match b {
                    b'0'..=b'9' => b - b'0',
                    _ => b - b'a' + 10,
                };
                out[i] = digit(pair[0]) << 4 | digit(pair[1]);
            }
            Uid::Uuid(out)
        } else {
            Uid::Other(s.into())
        }
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uid::Other(s) => f.write_str(s),
            Uid::Uuid(b) => {
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// IPs of `status.loadBalancer.ingress`: up to two kept inline (one per
/// family is what a Service can hold), more on the heap, or why they do not
/// parse.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StatusIps {
    Few { ips: [IpAddr; 2], len: u8 },
    Many(Box<[IpAddr]>),
    Bad(Box<str>),
}

impl StatusIps {
    fn of(ips: Result<Vec<IpAddr>, String>) -> StatusIps {
        match ips {
            Err(e) => StatusIps::Bad(e.into()),
            Ok(list) if list.len() <= 2 => {
                let unspecified = IpAddr::from([0, 0, 0, 0]);
                let mut ips = [unspecified; 2];
                ips[..list.len()].copy_from_slice(&list);
                StatusIps::Few {
                    ips,
                    len: list.len() as u8,
                }
            }
            Ok(list) => StatusIps::Many(list.into_boxed_slice()),
        }
    }

    fn get(&self) -> Result<&[IpAddr], &str> {
        match self {
            StatusIps::Few { ips, len } => Ok(&ips[..*len as usize]),
            StatusIps::Many(ips) => Ok(ips),
            StatusIps::Bad(e) => Err(e),
        }
    }
}

/// String pairs sorted by key in one allocation: the number of pairs, the end
/// offset of each key and each value, then the text of all of them back to
/// back (labels are read for `serviceSelectors` only, and a cluster can hold
/// many Services).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels {
    /// Empty for no labels.
    data: Box<[u8]>,
}

impl Labels {
    /// From pairs sorted by key (a `BTreeMap`). Pairs beyond 4 GiB of text
    /// in total are not kept (nothing real comes close).
    pub fn from_sorted<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let mut text = String::new();
        let mut ends: Vec<u32> = Vec::new();
        for (k, v) in pairs {
            let Ok(end) = u32::try_from(text.len() + k.len() + v.len()) else {
                break;
            };
            text.push_str(k);
            ends.push(end - v.len() as u32);
            text.push_str(v);
            ends.push(end);
        }
        if ends.is_empty() {
            return Labels::default();
        }
        let mut data = Vec::with_capacity(4 + 4 * ends.len() + text.len());
        data.extend_from_slice(&((ends.len() / 2) as u32).to_le_bytes());
        for e in &ends {
            data.extend_from_slice(&e.to_le_bytes());
        }
        data.extend_from_slice(text.as_bytes());
        Labels {
            data: data.into_boxed_slice(),
        }
    }

    fn word(&self, i: usize) -> usize {
        let b = &self.data[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    pub fn len(&self) -> usize {
        if self.data.is_empty() {
            0
        } else {
            self.word(0)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn text(&self, from: usize, to: usize) -> &str {
        let base = 4 + 8 * self.len();
        // Built from &str pieces at char boundaries, so always valid.
        std::str::from_utf8(&self.data[base + from..base + to]).unwrap_or_default()
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 { 0 } else { self.word(2 * i) };
        let mid = self.word(2 * i + 1);
        let end = self.word(2 * i + 2);
        (self.text(start, mid), self.text(mid, end))
    }

    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (k, v) = self.pair(mid);
            match k.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(v),
            }
        }
        None
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        (0..self.len()).map(|i| self.pair(i))
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Labels {
        Labels::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A Service reduced to what the allocator reads, parsed once when it is
/// read: identity, creation time, type and class, labels, the request (IPs,
/// pool, families, sharing key with ports and backend), the IPs in its status
/// and the pool annotation. Build one with [`LbService::from`] a `Service`;
/// the full object need not be kept. A cluster's cache holds these.
#[derive(Debug, Clone, PartialEq)]
pub struct LbService {
    pub key: ServiceKey,
    /// `metadata.uid` (Events about the Service point at it).
    pub uid: Option<Uid>,
    created: Created,
    deleting: bool,
    kind: Kind,
    /// Kept for LoadBalancer Services only (no other one is allocated for).
    labels: Labels,
    /// The request, or why it is malformed; parsed for LoadBalancer
    /// Services only (an empty error otherwise).
    request: Result<Request, Box<str>>,
    written: Written,
}

/// What the controller itself writes on a Service: the IPs of
/// `status.loadBalancer.ingress` and the `ferrolb.io/ip-allocated-from-pool`
/// annotation. A cache can update just this part (see
/// [`LbService::same_but_written`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    status: StatusIps,
    /// Shared: pool names are few.
    pool_annotation: Option<Arc<str>>,
}

impl AsRef<LbService> for LbService {
    fn as_ref(&self) -> &LbService {
        self
    }
}

impl From<&Service> for LbService {
    fn from(svc: &Service) -> LbService {
        let spec = spec_of(svc);
        let deleting = svc.metadata.deletion_timestamp.is_some();
        let other_type = match spec.type_.as_deref() {
            Some("LoadBalancer") => None,
            other => Some(other.unwrap_or_default().into()),
        };
        let lb = other_type.is_none();
        let mut out = LbService {
            key: ServiceKey::of(svc),
            uid: svc.metadata.uid.as_deref().map(Uid::parse),
            created: Created::of(svc.metadata.creation_timestamp.as_ref().map(|t| t.0)),
            deleting,
            request: if !deleting && lb {
                parse_request(svc).map_err(Into::into)
            } else {
                Err("".into())
            },
            kind: match other_type {
                None => Kind::LoadBalancer {
                    class: spec.load_balancer_class.as_deref().map(Into::into),
                },
                Some(type_) => Kind::Other { type_ },
            },
            labels: match &svc.metadata.labels {
                Some(l) if lb => Labels::from(l),
                _ => Labels::default(),
            },
            written: Written {
                status: StatusIps::Few {
                    ips: [IpAddr::from([0, 0, 0, 0]); 2],
                    len: 0,
                },
                pool_annotation: None,
            },
        };
        out.set_status_from(svc);
        out
    }
}

impl LbService {
    /// Takes the status IPs and the pool annotation from `svc` (standalone
    /// mode overlays the previous run's results this way).
    pub fn set_status_from(&mut self, svc: &Service) {
        self.written.status = StatusIps::of(status_ips(svc));
        self.written.pool_annotation = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ALLOCATED_FROM_POOL_ANNOTATION))
            .map(|p| p.as_str().into());
    }

    /// The IPs in `status.loadBalancer.ingress` (empty when they do not parse).
    pub fn status_ips(&self) -> &[IpAddr] {
        self.written.status.get().unwrap_or_default()
    }

    /// The `ferrolb.io/ip-allocated-from-pool` annotation.
    pub fn pool_annotation(&self) -> Option<&str> {
        self.written.pool_annotation.as_deref()
    }

    /// The status IPs and pool annotation.
    pub fn written(&self) -> &Written {
        &self.written
    }

    /// Replaces the status IPs and pool annotation.
    pub fn set_written(&mut self, written: Written) {
        self.written = written;
    }

    /// Whether `self` and `other` differ at most in what the controller
    /// writes (status IPs, pool annotation).
    pub fn same_but_written(&self, other: &LbService) -> bool {
        let LbService {
            key,
            uid,
            created,
            deleting,
            kind,
            labels,
            request,
            written: _,
        } = self;
        *key == other.key
            && *uid == other.uid
            && *created == other.created
            && *deleting == other.deleting
            && *kind == other.kind
            && *labels == other.labels
            && *request == other.request
    }

    /// Shares the pool annotation's text with `name` when they are equal (a
    /// cache keeps one copy of each pool name this way).
    pub fn share_pool_annotation(&mut self, intern: impl FnOnce(&Arc<str>) -> Arc<str>) {
        if let Some(p) = &self.written.pool_annotation {
            self.written.pool_annotation = Some(intern(p));
        }
    }

    /// Why an allocator for `class` does not handle this Service; None when it does.
    pub fn not_ours(&self, class: Option<&str>) -> Option<NotOurs> {
        if self.deleting {
            Some(NotOurs::Deleting)
        } else {
            match &self.kind {
                Kind::Other { type_ } => Some(NotOurs::NotLoadBalancer(
                    (!type_.is_empty()).then(|| type_.to_string()),
                )),
                Kind::LoadBalancer { class: mine } if mine.as_deref() != class => {
                    Some(NotOurs::OtherClass(mine.as_deref().map(str::to_string)))
                }
                Kind::LoadBalancer { .. } => None,
            }
        }
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }
}

/// A Service read for the allocator: the compact Service and whether this
/// allocator handles it.
#[derive(Debug, Clone)]
pub(crate) struct ServiceView<'a> {
    pub(crate) svc: &'a LbService,
    pub(crate) key: &'a ServiceKey,
    /// None when the Service is ours.
    pub(crate) not_ours: Option<NotOurs>,
}

static EMPTY_SPEC: LazyLock<ServiceSpec> = LazyLock::new(ServiceSpec::default);

fn spec_of(svc: &Service) -> &ServiceSpec {
    svc.spec.as_ref().unwrap_or(&EMPTY_SPEC)
}

impl<'a> ServiceView<'a> {
    pub(crate) fn read(svc: &'a LbService, class: Option<&str>) -> ServiceView<'a> {
        ServiceView {
            svc,
            key: &svc.key,
            not_ours: svc.not_ours(class),
        }
    }

    pub(crate) fn labels(&self) -> &'a Labels {
        &self.svc.labels
    }

    pub(crate) fn request(&self) -> Result<&'a Request, &'a str> {
        self.svc.request.as_ref().map_err(|e| &**e)
    }

    pub(crate) fn status(&self) -> Result<&'a [IpAddr], &'a str> {
        self.svc.written.status.get()
    }

    /// The allocation order: creationTimestamp (missing first), then namespace/name.
    pub(crate) fn order_key(&self) -> (Created, &'a ServiceKey) {
        (self.svc.created, self.key)
    }
}

fn annotation<'s>(svc: &'s Service, names: &[&'static str]) -> Option<(&'static str, &'s str)> {
    let ann = svc.metadata.annotations.as_ref()?;
    names
        .iter()
        .find_map(|n| ann.get(*n).map(|v| (*n, v.trim())))
        .filter(|(_, v)| !v.is_empty())
}

fn parse_family(s: &str) -> Result<Family, String> {
    match s {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(format!(
            "spec.ipFamilies has unknown family {other:?}; expected IPv4 or IPv6"
        )),
    }
}

fn other(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rules of a Service that does not allow sharing (most of them), shared.
static NO_SHARING: LazyLock<Arc<ShareInfo>> = LazyLock::new(|| Arc::new(ShareInfo::none()));

fn parse_request(svc: &Service) -> Result<Request, String> {
    let spec = spec_of(svc);
    let policy = match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => Policy::Single,
        Some("PreferDualStack") => Policy::PreferDual,
        Some("RequireDualStack") => Policy::RequireDual,
        Some(other) => {
            return Err(format!(
                "spec.ipFamilyPolicy {other:?} is unknown; expected SingleStack, PreferDualStack or RequireDualStack"
            ));
        }
    };
    let declared: Vec<Family> = spec
        .ip_families
        .iter()
        .flatten()
        .map(|s| parse_family(s))
        .collect::<Result<_, _>>()?;
    if declared.len() > 2 || (declared.len() == 2 && declared[0] == declared[1]) {
        return Err(format!(
            "spec.ipFamilies {:?} must list at most one IPv4 and one IPv6 family",
            spec.ip_families.clone().unwrap_or_default()
        ));
    }

    // Requested IPs: the first annotation present, else spec.loadBalancerIP.
    let (source, raw) = match annotation(svc, &LOAD_BALANCER_IPS_ANNOTATIONS) {
        Some((name, v)) => (format!("annotation {name}"), Some(v.to_string())),
        None => (
            "spec.loadBalancerIP".to_string(),
            spec.load_balancer_ip
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        ),
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(raw) = &raw {
        for part in raw.split(',').map(str::trim) {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| format!("{source} {raw:?}: {part:?} is not an IP address"))?;
            ips.push(ip);
        }
        if ips.len() > 2 {
            return Err(format!(
                "{source} {raw:?} lists {} IPs; at most one IPv4 and one IPv6 address are allowed",
                ips.len()
            ));
        }
        if ips.len() == 2 && Family::of(&ips[0]) == Family::of(&ips[1]) {
            return Err(format!(
                "{source} {raw:?} lists two {} addresses; at most one per family is allowed",
                Family::of(&ips[0])
            ));
        }
    }

    // Families wanted, in order.
    let families = match policy {
        Policy::Single => {
            let first = match (declared.first(), ips.first()) {
                (Some(f), _) => *f,
                // Unset ipFamilies: follow the requested IP, else IPv4.
                (None, Some(ip)) => Family::of(ip),
                (None, None) => Family::V4,
            };
            Families::one(first)
        }
        Policy::PreferDual | Policy::RequireDual => {
            Families::two(declared.first().copied().unwrap_or(Family::V4))
        }
    };
    if !ips.is_empty() {
        if policy == Policy::Single && ips.len() == 2 {
            return Err(format!(
                "{source} requests two IPs ({}) but ipFamilyPolicy is SingleStack",
                list(&ips)
            ));
        }
        // Dual-stack policies accept either family; SingleStack only its own.
        if policy == Policy::Single
            && let Some(bad) = ips.iter().find(|ip| Family::of(ip) != families[0])
        {
            return Err(format!(
                "{source} requests {bad}, an {} address, but the Service is SingleStack {}",
                Family::of(bad),
                families[0]
            ));
        }
        if policy == Policy::RequireDual && ips.len() != 2 {
            return Err(format!(
                "{source} requests only {} but ipFamilyPolicy RequireDualStack needs one IPv4 and one IPv6 address",
                list(&ips)
            ));
        }
    }

    let pool: Option<Box<str>> = annotation(svc, &ADDRESS_POOL_ANNOTATIONS).map(|(_, v)| v.into());
    let share = match annotation(svc, &ALLOW_SHARED_IP_ANNOTATIONS) {
        Some((_, key)) => Arc::new(ShareInfo::of(svc, Some(key.to_string()))),
        None => NO_SHARING.clone(),
    };
    let mut req = Request {
        policy,
        families,
        share,
        extra: None,
    };
    req.in_family_order(&mut ips);
    if !ips.is_empty() || pool.is_some() {
        req.extra = Some(Box::new(Extra {
            ips: ips.into_boxed_slice(),
            pool,
        }));
    }
    Ok(req)
}

fn status_ips(svc: &Service) -> Result<Vec<IpAddr>, String> {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    let mut out = Vec::new();
    for ing in ingress.into_iter().flatten() {
        if let Some(ip) = ing.ip.as_deref() {
            let parsed: IpAddr = ip.trim().parse().map_err(|_| {
                format!("status.loadBalancer.ingress holds {ip:?}, which is not an IP address")
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_kept_compactly_and_found() {
        let map: BTreeMap<String, String> = [("app", "web"), ("", "empty-key"), ("tier", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let l = Labels::from(&map);
        assert_eq!(l.len(), 3);
        assert_eq!(l.get("app"), Some("web"));
        assert_eq!(l.get(""), Some("empty-key"));
        assert_eq!(l.get("tier"), Some(""));
        assert_eq!(l.get("ap"), None);
        assert_eq!(l.get("zzz"), None);
        let back: Vec<(&str, &str)> = l.iter().collect();
        assert_eq!(
            back,
            map.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>()
        );
        assert!(Labels::default().is_empty());
        assert_eq!(Labels::default().get("app"), None);
        assert_eq!(Labels::default().len(), 0);
    }

    #[test]
    fn uids_are_kept_as_bytes_when_they_are_uuids() {
        let text = "6f1c2d3e-0a1b-4c5d-8e9f-0123456789ab";
        let uid = Uid::parse(text);
        assert!(matches!(uid, Uid::Uuid(_)));
        assert_eq!(uid.to_string(), text);
        for other in [
            "not-a-uuid",
            "6F1C2D3E-0A1B-4C5D-8E9F-0123456789AB",
            "6f1c2d3e0a1b4c5d8e9f0123456789abcdef",
        ] {
            assert_eq!(Uid::parse(other), Uid::Other(other.into()));
            assert_eq!(Uid::parse(other).to_string(), other);
        }
    }

    #[test]
    fn status_ips_more_than_two_are_kept() {
        let three: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let st = StatusIps::of(Ok(three.clone()));
        assert_eq!(st.get(), Ok(three.as_slice()));
        assert_eq!(
            StatusIps::of(Ok(three[..1].to_vec())).get(),
            Ok(&three[..1])
        );
        assert_eq!(StatusIps::of(Ok(vec![])).get(), Ok(&[][..]));
        assert_eq!(StatusIps::of(Err("bad".into())).get(), Err("bad"));
    }
}
