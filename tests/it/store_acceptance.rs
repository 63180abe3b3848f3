//! One acceptance suite that every store backend runs: the same operations, the same expectations.
//!
//! Backend differences are parameters ([`Capabilities`]), never skipped tests. The suite is run below on the
//! embedded store, a single Redis, two Redis (durable + short-lived), and a three-master Redis Cluster; the
//! Redis instances are real `redis-server` processes started by the tests.

use std::collections::HashSet;

use futures_util::future::join_all;
use protocol::{LabelId, SiteKey};
use server::model::{
    AddedImage, ApiKeyRecord, BatchRun, ChallengeState, ConsensusSettings, Contribution, ControlStats,
    ImageId, ImageMeta, LabelDef, NewImage, NewProject, OwnerId, PreviousSecret, ProjectId, RecordedRevision,
    Serving, Site, Slot, Texts, TokenState, now,
};
use server::store::{AnyStore, BATCH_RUNS_KEPT, EmbeddedStore, RedisStore, Store, StoreError};

use crate::redis_support::{RedisCluster, RedisServer};

/// What differs between backends.
#[derive(Debug, Clone, Copy)]
pub struct Capabilities {
    /// Several store handles (server instances) can be opened on the same data and see each other's writes.
    /// The embedded store belongs to one process at a time.
    pub shared_between_instances: bool,
}

fn label(s: &str) -> LabelId {
    LabelId::parse(s).expect("a valid label")
}

fn texts(s: &str) -> Texts {
    Texts {
        fr: format!("{s} (fr)"),
        en: s.to_owned(),
    }
}

fn new_project(name: &str) -> NewProject {
    NewProject {
        name: name.to_owned(),
        question: texts("Quelle est l’orientation de ce toit ?"),
        labels: ["north_south", "east_west", "flat", "other"]
            .into_iter()
            .map(|l| LabelDef {
                id: label(l),
                text: texts(l),
            })
            .collect(),
        abstain: Some(label("other")),
        owner: None,
        consensus: ConsensusSettings::default(),
        priority: 1,
    }
}

fn image(name: &str, known: Option<&str>) -> NewImage {
    NewImage {
        name: name.to_owned(),
        content_type: "image/png".to_owned(),
        // Bytes that are not UTF-8, so that a backend that mangles binary data is caught.
        bytes: name.bytes().chain([0, 0xff, 0xfe, 0x80]).collect(),
        known_label: known.map(label),
        // Distinct per name, as the intake's hash of distinct images would be.
        content_hash: format!("hash-of-{name}"),
    }
}

fn site(projects: &[ProjectId]) -> Site {
    Site {
        sitekey: SiteKey::parse(uuid::Uuid::new_v4().to_string()).expect("a valid sitekey"),
        // 64 hex digits, like a SHA-256.
        secret_hash: format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ),
        hostnames: vec!["demo.localhost".to_owned()],
        projects: projects.to_vec(),
        created_at: now(),
        owner: None,
        previous_secret: None,
    }
}

fn sitekey() -> SiteKey {
    SiteKey::parse(uuid::Uuid::new_v4().to_string()).expect("a valid sitekey")
}

fn random_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn challenge(project: ProjectId, ttl: u64) -> ChallengeState {
    ChallengeState {
        id: random_id(),
        sitekey: sitekey(),
        hostname: "demo.localhost".to_owned(),
        project,
        slots: vec![
            Slot {
                image: ImageId(1),
                expected: Some(label("flat")),
            },
            Slot {
                image: ImageId(2),
                expected: None,
            },
        ],
        expires_at: now() + ttl,
    }
}

fn token(ttl: u64) -> TokenState {
    TokenState {
        id: random_id(),
        sitekey: sitekey(),
        hostname: "demo.localhost".to_owned(),
        challenge_ts: now(),
        expires_at: now() + ttl,
    }
}

fn contribution(project: ProjectId, image: u64, l: &str) -> Contribution {
    Contribution {
        project,
        image: ImageId(image),
        label: label(l),
        sitekey: sitekey(),
        at: now(),
        challenge: random_id(),
    }
}

/// Runs the whole suite on a backend. `open` opens a handle on the backend's data; it is called twice when
/// the backend is shared between instances, to prove that two instances see one truth.
pub async fn acceptance_test_suite(open: impl Fn() -> AnyStore, caps: Capabilities) {
    let store = open();
    store.ping().await.expect("a fresh store is ready");
    projects_and_images_round_trip(&store).await;
    challenges_pick_a_control_and_an_unknown(&store).await;
    sites_are_found_by_key_and_by_secret_hash(&store).await;
    challenges_and_tokens_are_taken_once(&store).await;
    short_lived_records_expire(&store).await;
    concurrent_takes_give_exactly_one_winner(&[&store]).await;
    contributions_are_kept_in_order_per_project(&store).await;
    votes_follow_contributions_and_decided_images_leave_serving(&store).await;
    a_resent_contribution_is_stored_once(&store).await;
    images_are_added_once_per_content(&store).await;
    a_new_project_with_one_content_twice_is_refused(&store).await;
    images_are_paged_in_id_order(&store).await;
    serving_follows_retire_promote_and_reopen(&store).await;
    control_answers_are_counted_per_image(&store).await;
    owners_have_unique_names_and_api_keys_find_them(&[&store]).await;
    projects_are_listed_in_id_order_and_updated(&store).await;
    sites_are_listed_and_secrets_rotate(&store).await;
    contributions_are_paged_by_sequence_number(&store).await;
    batch_runs_are_kept_latest_first_and_trimmed(&store).await;
    if caps.shared_between_instances {
        let other = open();
        instances_share_one_truth(&store, &other).await;
        concurrent_takes_give_exactly_one_winner(&[&store, &other]).await;
        owners_have_unique_names_and_api_keys_find_them(&[&store, &other]).await;
        instances_share_the_owner_records(&store, &other).await;
    }
}

/// The image named `name` in `metas`.
fn named(metas: &[ImageMeta], name: &str) -> ImageMeta {
    metas
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no image named {name} in {metas:?}"))
        .clone()
}

/// An image whose content is that of `image(of, ..)` under another name.
fn same_content(name: &str, of: &str) -> NewImage {
    NewImage {
        content_hash: format!("hash-of-{of}"),
        ..image(name, None)
    }
}

fn stored(added: &AddedImage) -> &ImageMeta {
    match added {
        AddedImage::Stored(meta) => meta,
        AddedImage::Duplicate(meta) => panic!("stored as a duplicate of {meta:?}"),
    }
}

async fn images_are_added_once_per_content(store: &AnyStore) {
    let project = store
        .create_project(
            new_project("dedup"),
            vec![image("c", Some("flat")), image("u1", None)],
        )
        .await
        .expect("create");
    let created = store.images(project.id).await.expect("list");
    let u1 = named(&created, "u1");
    let last_created = created.iter().map(|m| m.id).max().expect("images");

    let added = store
        .add_images(
            project.id,
            vec![
                same_content("u1 again", "u1"),
                image("u2", None),
                image("g", Some("east_west")),
                same_content("u2 again", "u2"),
                image("abstain", Some("other")),
            ],
        )
        .await
        .expect("add");
    assert_eq!(added.len(), 5, "one outcome per image: {added:?}");
    // A content the project holds comes back as the stored image, under its stored name.
    assert_eq!(added[0], AddedImage::Duplicate(u1.clone()));
    let u2 = stored(&added[1]).clone();
    let g = stored(&added[2]).clone();
    // A duplicate within the same call counts too.
    assert_eq!(added[3], AddedImage::Duplicate(u2.clone()));
    let abstain = stored(&added[4]).clone();
    for (meta, (name, known)) in [&u2, &g, &abstain].into_iter().zip([
        ("u2", None),
        ("g", Some("east_west")),
        ("abstain", Some("other")),
    ]) {
        assert_eq!(meta.name, name);
        assert_eq!(meta.project, project.id);
        assert_eq!(meta.known_label, known.map(label));
        assert_eq!(meta.content_hash, format!("hash-of-{name}"));
        assert!(meta.id > last_created, "fresh ids: {meta:?}");
        let data = store
            .image_data(meta.id)
            .await
            .expect("read")
            .expect("the bytes are stored");
        assert_eq!(data.bytes, image(name, None).bytes);
    }
    assert!(u2.id < g.id && g.id < abstain.id, "ids in call order");

    let listed = store.images(project.id).await.expect("list");
    let mut expected = created.clone();
    expected.extend([u2.clone(), g.clone(), abstain.clone()]);
    assert_eq!(listed, expected, "the duplicates were not stored");

    // Across calls too, and a call of duplicates only stores nothing.
    let again = store
        .add_images(
            project.id,
            vec![same_content("g again", "g"), same_content("c again", "c")],
        )
        .await
        .expect("add");
    assert_eq!(
        again,
        vec![
            AddedImage::Duplicate(g.clone()),
            AddedImage::Duplicate(named(&created, "c"))
        ]
    );
    assert_eq!(store.images(project.id).await.expect("list"), expected);
    assert_eq!(
        store.add_images(project.id, Vec::new()).await.expect("add"),
        Vec::new()
    );

    // Another project may hold the same content.
    let other = store
        .create_project(new_project("dedup other"), vec![image("c", Some("flat"))])
        .await
        .expect("create");
    let added = store
        .add_images(other.id, vec![image("u1", None)])
        .await
        .expect("add");
    assert_eq!(stored(&added[0]).name, "u1");

    // The added images are served as the created ones are.
    assert_eq!(
        store
            .serving(project.id, &[u2.id, g.id, abstain.id])
            .await
            .expect("serving"),
        vec![
            Serving::Unknown,
            Serving::Control(label("east_west")),
            Serving::Retired
        ]
    );

    assert!(matches!(
        store.add_images(ProjectId(987_654), vec![image("x", None)]).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn a_new_project_with_one_content_twice_is_refused(store: &AnyStore) {
    assert!(matches!(
        store
            .create_project(
                new_project("dedup refused"),
                vec![image("x", None), image("y", None), same_content("x again", "x")],
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        !store
            .projects()
            .await
            .expect("list")
            .iter()
            .any(|p| p.name == "dedup refused")
    );
}

async fn images_are_paged_in_id_order(store: &AnyStore) {
    let a = store
        .create_project(
            new_project("pages a"),
            (0..5).map(|n| image(&format!("a{n}"), None)).collect(),
        )
        .await
        .expect("create");
    // Another project's images between a's, so that a's ids are not contiguous.
    let b = store
        .create_project(new_project("pages b"), vec![image("b0", None)])
        .await
        .expect("create");
    store
        .add_images(
            a.id,
            vec![
                image("a5", Some("flat")),
                same_content("a0 again", "a0"),
                image("a6", None),
            ],
        )
        .await
        .expect("add");
    store
        .add_images(b.id, vec![image("b1", None)])
        .await
        .expect("add");
    store
        .add_images(a.id, vec![image("a7", None)])
        .await
        .expect("add");

    let all = store.images(a.id).await.expect("list");
    let names: Vec<&str> = all.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));

    // One at a time: every image exactly once, in id order.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store.images_page(a.id, after, 1).await.expect("page");
        assert!(page.len() <= 1, "at most the limit: {page:?}");
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        paged.extend(page);
        assert!(paged.len() <= all.len(), "paging does not end: {paged:?}");
    }
    assert_eq!(paged, all);
    assert_eq!(store.images_page(a.id, None, 1000).await.expect("page"), all);
    assert_eq!(
        store.images_page(a.id, Some(all[2].id), 3).await.expect("page"),
        all[3..6]
    );
    // `after` need not be an image of the project.
    assert_eq!(
        store
            .images_page(a.id, Some(ImageId(all[7].id.0 - 1)), 1000)
            .await
            .expect("page"),
        all[7..]
    );
    assert!(
        store
            .images_page(a.id, Some(all[7].id), 1000)
            .await
            .expect("page")
            .is_empty()
    );
    assert_eq!(
        store
            .images_page(b.id, None, 1000)
            .await
            .expect("page")
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["b0", "b1"]
    );
    assert!(
        store
            .images_page(ProjectId(987_654), None, 1000)
            .await
            .expect("page")
            .is_empty()
    );
}

async fn serving_follows_retire_promote_and_reopen(store: &AnyStore) {
    let project = store
        .create_project(
            new_project("serving"),
            vec![
                image("c", Some("flat")),
                image("abstain", Some("other")),
                image("u1", None),
                image("u2", None),
                image("u3", None),
            ],
        )
        .await
        .expect("create");
    let metas = store.images(project.id).await.expect("list");
    let ids: Vec<ImageId> = ["c", "abstain", "u1", "u2", "u3"]
        .into_iter()
        .map(|n| named(&metas, n).id)
        .chain([ImageId(987_654)])
        .collect();
    let (c, u1, u2) = (ids[0], ids[2], ids[3]);
    let serving = || async { store.serving(project.id, &ids).await.expect("serving") };
    assert_eq!(
        serving().await,
        vec![
            Serving::Control(label("flat")),
            Serving::Retired,
            Serving::Unknown,
            Serving::Unknown,
            Serving::Unknown,
            Serving::Retired,
        ]
    );
    assert!(store.serving(project.id, &[]).await.expect("serving").is_empty());

    store.retire_unknown(project.id, u1).await.expect("retire");
    store
        .promote_control(project.id, u2, label("east_west"))
        .await
        .expect("promote");
    assert_eq!(
        serving().await,
        vec![
            Serving::Control(label("flat")),
            Serving::Retired,
            Serving::Retired,
            Serving::Control(label("east_west")),
            Serving::Unknown,
            Serving::Retired,
        ]
    );

    // Re-opened controls (gold or promoted) and a retired unknown collect votes again; twice is once.
    for image in [c, c, u2, u1] {
        store.reopen(project.id, image).await.expect("reopen");
    }
    assert_eq!(
        serving().await,
        vec![
            Serving::Unknown,
            Serving::Retired,
            Serving::Unknown,
            Serving::Unknown,
            Serving::Unknown,
            Serving::Retired,
        ]
    );
    // No control is left: the serving sets the challenges use say the same.
    assert_eq!(store.pick_slots(project.id).await.expect("pick"), None);
    store
        .promote_control(project.id, c, label("north_south"))
        .await
        .expect("promote");
    store
        .promote_control(project.id, u1, label("flat"))
        .await
        .expect("promote");
    let [control, _] = store
        .pick_slots(project.id)
        .await
        .expect("pick")
        .expect("a challenge");
    assert!(
        [(c, label("north_south")), (u1, label("flat"))]
            .contains(&(control.image, control.expected.expect("a control"))),
        "the control's label is the promoted one"
    );
}

async fn control_answers_are_counted_per_image(store: &AnyStore) {
    let project = store
        .create_project(
            new_project("control stats"),
            vec![image("c1", Some("flat")), image("c2", Some("east_west"))],
        )
        .await
        .expect("create");
    let other = store
        .create_project(new_project("control stats other"), vec![image("c", Some("flat"))])
        .await
        .expect("create");
    assert!(store.control_stats(project.id).await.expect("stats").is_empty());
    let metas = store.images(project.id).await.expect("list");
    let (c1, c2) = (named(&metas, "c1").id, named(&metas, "c2").id);
    // c2 first, so that the order of the answers does not give the id order.
    let mut counts = Vec::new();
    for passed in [true, false, true, true] {
        counts.push(
            store
                .record_control_answer(project.id, c2, passed)
                .await
                .expect("record"),
        );
    }
    // Each answer returns the control's counts with itself included: what demotion decides on.
    assert_eq!(
        counts,
        [(1, 0), (1, 1), (2, 1), (3, 1)]
            .map(|(passed, failed)| ControlStats { passed, failed })
            .to_vec()
    );
    for _ in 0..2 {
        store
            .record_control_answer(project.id, c1, false)
            .await
            .expect("record");
    }
    let other_c = store.images(other.id).await.expect("list")[0].id;
    store
        .record_control_answer(other.id, other_c, true)
        .await
        .expect("record");
    assert_eq!(
        store.control_stats(project.id).await.expect("stats"),
        vec![
            (c1, ControlStats { passed: 0, failed: 2 }),
            (c2, ControlStats { passed: 3, failed: 1 }),
        ]
    );
    assert_eq!(
        store.control_stats(other.id).await.expect("stats"),
        vec![(other_c, ControlStats { passed: 1, failed: 0 })]
    );
}

/// Creates owners and keys through the given instances in turn: names are unique across all of them.
async fn owners_have_unique_names_and_api_keys_find_them(instances: &[&AnyStore]) {
    let store = instances[0];
    let last = instances[instances.len() - 1];
    let name = format!("Mairie de Test {}", random_id());
    let owner = store.create_owner(&name).await.expect("create an owner");
    assert_eq!(owner.name, name);
    match last.create_owner(&name).await {
        Err(StoreError::Conflict(message)) => assert!(message.contains(&name), "{message}"),
        other => panic!("a second owner with the same name: {other:?}"),
    }
    let second = last
        .create_owner(&format!("{name} (services techniques)"))
        .await
        .expect("another name");
    assert_ne!(second.id, owner.id);

    // Of concurrent creations with one name, exactly one succeeds.
    let contested = format!("Préfecture {}", random_id());
    let attempts = join_all((0..10).map(|n| instances[n % instances.len()].create_owner(&contested))).await;
    let created: Vec<_> = attempts.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(created.len(), 1, "{attempts:?}");
    assert!(
        attempts
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_))))
    );

    let owners = last.owners().await.expect("list");
    assert!(
        owners.windows(2).all(|w| w[0].id < w[1].id),
        "id order: {owners:?}"
    );
    for expected in [&owner, &second] {
        assert!(owners.contains(expected), "{expected:?} not in {owners:?}");
    }
    assert_eq!(
        owners.iter().filter(|o| o.name == contested).count(),
        1,
        "{owners:?}"
    );
    assert!(!owners.iter().any(|o| o.id == OwnerId(987_654)));

    let key = ApiKeyRecord {
        hash: format!("{}{}", random_id(), random_id()),
        owner: owner.id,
        name: "export nocturne".to_owned(),
        created_at: now(),
    };
    store.add_api_key(key.clone()).await.expect("add a key");
    assert_eq!(last.api_key(&key.hash).await.expect("read"), Some(key.clone()));
    let mut same_hash = key.clone();
    same_hash.owner = second.id;
    assert!(matches!(
        last.add_api_key(same_hash).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.api_key(&key.hash).await.expect("read"), Some(key));
    assert_eq!(store.api_key(&"0".repeat(64)).await.expect("read"), None);
}

async fn projects_are_listed_in_id_order_and_updated(store: &AnyStore) {
    let first = store
        .create_project(new_project("listed 1"), vec![image("u", None)])
        .await
        .expect("create");
    let second = store
        .create_project(new_project("listed 2"), Vec::new())
        .await
        .expect("create");
    let listed = store.projects().await.expect("list");
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id), "id order");
    for expected in [&first, &second] {
        assert!(listed.contains(expected), "{expected:?} not listed");
    }
    // Every project the suite made so far is there, not only the last ones.
    assert!(listed.iter().any(|p| p.name == "roofs"), "{listed:?}");

    let mut updated = first.clone();
    "listed 1, renamed".clone_into(&mut updated.name);
    updated.priority = 5;
    updated.archived = true;
    updated.owner = Some(OwnerId(42));
    updated.consensus.max_votes += 1;
    store.update_project(updated.clone()).await.expect("update");
    assert_eq!(
        store.project(first.id).await.expect("read"),
        Some(updated.clone())
    );
    let listed = store.projects().await.expect("list");
    assert!(listed.contains(&updated) && !listed.contains(&first));
    assert!(listed.contains(&second), "the other project is untouched");

    let mut missing = second.clone();
    missing.id = ProjectId(987_654);
    assert!(matches!(
        store.update_project(missing).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.project(ProjectId(987_654)).await.expect("read"), None);
}

fn secret_hash() -> String {
    format!("{}{}", random_id(), random_id())
}

async fn sites_are_listed_and_secrets_rotate(store: &AnyStore) {
    let a = site(&[ProjectId(1)]);
    let b = site(&[ProjectId(2)]);
    store.create_site(a.clone()).await.expect("create");
    store.create_site(b.clone()).await.expect("create");
    let listed = store.sites().await.expect("list");
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].sitekey.as_str() < w[1].sitekey.as_str()),
        "sitekey order"
    );
    for expected in [&a, &b] {
        assert!(listed.contains(expected), "{expected:?} not listed");
    }

    // A rotation: the new secret, the old one still valid for a while, other hostnames.
    let old_hash = a.secret_hash.clone();
    let mut rotated = a.clone();
    rotated.secret_hash = secret_hash();
    rotated.previous_secret = Some(PreviousSecret {
        hash: old_hash.clone(),
        valid_until: now() + 3600,
    });
    rotated.hostnames.push("www.demo.localhost".to_owned());
    store.update_site(rotated.clone()).await.expect("update");
    assert_eq!(store.site(&a.sitekey).await.expect("read"), Some(rotated.clone()));
    for hash in [&rotated.secret_hash, &old_hash] {
        assert_eq!(
            store.site_by_secret_hash(hash).await.expect("read"),
            Some(rotated.clone()),
            "both secrets find the site during the overlap"
        );
    }
    let listed = store.sites().await.expect("list");
    assert!(listed.contains(&rotated) && !listed.contains(&a));

    // The overlap ends: the old secret finds nothing.
    let mut settled = rotated.clone();
    settled.previous_secret = None;
    store.update_site(settled.clone()).await.expect("update");
    assert_eq!(store.site_by_secret_hash(&old_hash).await.expect("read"), None);
    assert_eq!(
        store
            .site_by_secret_hash(&settled.secret_hash)
            .await
            .expect("read"),
        Some(settled.clone())
    );
    // Rotating again drops the replaced current secret at once when no overlap is asked for.
    let mut again = settled.clone();
    again.secret_hash = secret_hash();
    store.update_site(again.clone()).await.expect("update");
    assert_eq!(
        store
            .site_by_secret_hash(&settled.secret_hash)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store.site_by_secret_hash(&again.secret_hash).await.expect("read"),
        Some(again.clone())
    );
    assert_eq!(
        store.site_by_secret_hash(&b.secret_hash).await.expect("read"),
        Some(b.clone()),
        "another site is untouched"
    );

    // No such site: refused, and its secret finds nothing.
    let missing = site(&[ProjectId(1)]);
    assert!(matches!(
        store.update_site(missing.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.site(&missing.sitekey).await.expect("read"), None);
    assert_eq!(
        store
            .site_by_secret_hash(&missing.secret_hash)
            .await
            .expect("read"),
        None
    );
}

async fn contributions_are_paged_by_sequence_number(store: &AnyStore) {
    let project = store
        .create_project(new_project("contribution pages"), vec![image("u", None)])
        .await
        .expect("create");
    let other = store
        .create_project(new_project("contribution pages other"), vec![image("u", None)])
        .await
        .expect("create");
    assert!(
        store
            .contributions_page(project.id, 0, 1000)
            .await
            .expect("page")
            .is_empty()
    );
    for n in 0..7 {
        store
            .add_contribution(contribution(project.id, n, "flat"))
            .await
            .expect("add");
        store
            .add_contribution(contribution(other.id, n, "east_west"))
            .await
            .expect("add");
    }
    let all = store.contributions(project.id).await.expect("list");
    assert_eq!(all.len(), 7);
    assert_eq!(
        store.contributions_page(project.id, 0, 1000).await.expect("page"),
        all
    );
    assert_eq!(
        store.contributions_page(project.id, 0, 3).await.expect("page"),
        all[..3]
    );
    assert_eq!(
        store
            .contributions_page(project.id, all[2].seq, 3)
            .await
            .expect("page"),
        all[3..6]
    );
    assert_eq!(
        store
            .contributions_page(project.id, all[5].seq, 3)
            .await
            .expect("page"),
        all[6..]
    );
    assert!(
        store
            .contributions_page(project.id, all[6].seq, 3)
            .await
            .expect("page")
            .is_empty()
    );
    assert!(
        store
            .contributions_page(project.id, u64::MAX, 3)
            .await
            .expect("page")
            .is_empty()
    );
    // One at a time, by the last sequence number seen: each exactly once.
    let mut paged = Vec::new();
    let mut after = 0;
    while let Some(next) = store
        .contributions_page(project.id, after, 1)
        .await
        .expect("page")
        .pop()
    {
        after = next.seq;
        paged.push(next);
        assert!(paged.len() <= all.len(), "paging does not end");
    }
    assert_eq!(paged, all);
}

/// Owners, keys and site rotations made through one instance hold at the other at once.
async fn instances_share_the_owner_records(first: &AnyStore, second: &AnyStore) {
    let owner = first
        .create_owner(&format!("Commune {}", random_id()))
        .await
        .expect("create");
    assert!(second.owners().await.expect("list").contains(&owner));
    let s = site(&[ProjectId(1)]);
    first.create_site(s.clone()).await.expect("create");
    assert!(second.sites().await.expect("list").contains(&s));
    let mut rotated = s.clone();
    rotated.secret_hash = secret_hash();
    second.update_site(rotated.clone()).await.expect("update");
    assert_eq!(
        first.site_by_secret_hash(&s.secret_hash).await.expect("read"),
        None
    );
    assert_eq!(
        first
            .site_by_secret_hash(&rotated.secret_hash)
            .await
            .expect("read"),
        Some(rotated)
    );
    let project = first
        .create_project(new_project("shared listing"), Vec::new())
        .await
        .expect("create");
    let mut archived = project.clone();
    archived.archived = true;
    second.update_project(archived.clone()).await.expect("update");
    assert!(first.projects().await.expect("list").contains(&archived));
}

async fn a_resent_contribution_is_stored_once(store: &AnyStore) {
    let project = store
        .create_project(
            new_project("resend"),
            vec![image("c", Some("flat")), image("u", None)],
        )
        .await
        .expect("create");
    let u = store
        .images(project.id)
        .await
        .expect("list")
        .into_iter()
        .find(|m| m.name == "u")
        .expect("u")
        .id;
    // Other checks of the suite add contributions for made-up image ids: count from what is there.
    let votes_before = store.image_votes(project.id, u).await.expect("votes").len();
    let first = contribution(project.id, u.0, "flat");
    let seq = store.add_contribution(first.clone()).await.expect("add");
    // The same write again, as a client library resending after a broken connection would.
    assert_eq!(store.add_contribution(first.clone()).await.expect("resend"), seq);
    // Another challenge's answer for the same image is another contribution.
    let other = store
        .add_contribution(contribution(project.id, u.0, "flat"))
        .await
        .expect("add");
    assert!(other > seq);
    let stored = store.contributions(project.id).await.expect("list");
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(
        store.image_votes(project.id, u).await.expect("votes").len(),
        votes_before + 2
    );
}

async fn votes_follow_contributions_and_decided_images_leave_serving(store: &AnyStore) {
    let project = store
        .create_project(
            new_project("consensus"),
            vec![
                image("c", Some("flat")),
                image("u1", None),
                image("u2", None),
                image("u3", None),
            ],
        )
        .await
        .expect("create");
    let metas = store.images(project.id).await.expect("list");
    let by_name = |n: &str| metas.iter().find(|m| m.name == n).expect("image").id;
    let (u1, u2, u3) = (by_name("u1"), by_name("u2"), by_name("u3"));
    // Other checks of the suite add contributions for made-up image ids: count from what is there.
    let before_u1 = store.image_votes(project.id, u1).await.expect("votes");
    let before_u2 = store.image_votes(project.id, u2).await.expect("votes");
    for l in ["flat", "other", "flat"] {
        store
            .add_contribution(contribution(project.id, u1.0, l))
            .await
            .expect("add");
    }
    store
        .add_contribution(contribution(project.id, u2.0, "east_west"))
        .await
        .expect("add");
    let mut expected_u1 = before_u1;
    expected_u1.extend([label("flat"), label("other"), label("flat")]);
    assert_eq!(
        store.image_votes(project.id, u1).await.expect("votes"),
        expected_u1
    );
    let mut expected_u2 = before_u2;
    expected_u2.push(label("east_west"));
    assert_eq!(
        store.image_votes(project.id, u2).await.expect("votes"),
        expected_u2
    );

    // u1 retired (twice: idempotent), u2 promoted to a control labelled east_west: only u3 is left unknown.
    store.retire_unknown(project.id, u1).await.expect("retire");
    store.retire_unknown(project.id, u1).await.expect("retire again");
    store
        .promote_control(project.id, u2, label("east_west"))
        .await
        .expect("promote");
    store
        .promote_control(project.id, u2, label("east_west"))
        .await
        .expect("promote again");
    let mut controls = HashSet::new();
    for _ in 0..60 {
        let [control, other] = store
            .pick_slots(project.id)
            .await
            .expect("pick")
            .expect("a challenge");
        controls.insert((control.image, control.expected.clone().expect("a control label")));
        assert_eq!(
            other.image, u3,
            "a retired or promoted image was served as an unknown"
        );
        assert_eq!(other.expected, None);
    }
    let expected: HashSet<_> = [(by_name("c"), label("flat")), (u2, label("east_west"))]
        .into_iter()
        .collect();
    assert_eq!(
        controls, expected,
        "the promoted image is not served as a control"
    );
}

async fn projects_and_images_round_trip(store: &AnyStore) {
    let images = vec![
        image("control-a.png", Some("flat")),
        image("control-b.png", Some("east_west")),
        image("cant-tell.png", Some("other")),
        image("unknown-a.png", None),
    ];
    let project = store
        .create_project(new_project("roofs"), images.clone())
        .await
        .expect("create a project");
    assert_eq!(project.name, "roofs");
    assert_eq!(project.abstain, Some(label("other")));
    assert_eq!(
        store.project(project.id).await.expect("read"),
        Some(project.clone())
    );
    assert_eq!(store.project(ProjectId(987_654)).await.expect("read"), None);

    let metas = store.images(project.id).await.expect("list images");
    assert_eq!(metas.len(), images.len());
    let ids: HashSet<ImageId> = metas.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), images.len(), "image ids are unique");
    for (meta, original) in metas.iter().zip(&images) {
        // Listed in creation order.
        assert_eq!(meta.name, original.name);
        assert_eq!(meta.project, project.id);
        assert_eq!(meta.known_label, original.known_label);
        let data = store
            .image_data(meta.id)
            .await
            .expect("read image")
            .expect("the image exists");
        assert_eq!(data.bytes, original.bytes);
        assert_eq!(data.content_type, "image/png");
    }
    assert_eq!(store.image_data(ImageId(987_654)).await.expect("read"), None);

    // A second project gets its own id and its own images.
    let second = store
        .create_project(new_project("more roofs"), vec![image("x.png", None)])
        .await
        .expect("create a second project");
    assert_ne!(second.id, project.id);
    assert_eq!(store.images(second.id).await.expect("list").len(), 1);
    assert!(store.images(ProjectId(987_654)).await.expect("list").is_empty());
}

async fn challenges_pick_a_control_and_an_unknown(store: &AnyStore) {
    let project = store
        .create_project(
            new_project("pick"),
            vec![
                image("c1", Some("flat")),
                image("c2", Some("north_south")),
                image("abstain", Some("other")),
                image("u1", None),
                image("u2", None),
            ],
        )
        .await
        .expect("create");
    let metas = store.images(project.id).await.expect("list");
    let by_name = |n: &str| metas.iter().find(|m| m.name == n).expect("image").id;
    let controls = [(by_name("c1"), "flat"), (by_name("c2"), "north_south")];
    let unknowns = [by_name("u1"), by_name("u2")];
    let mut seen_unknowns = HashSet::new();
    for _ in 0..60 {
        let [control, other] = store
            .pick_slots(project.id)
            .await
            .expect("pick")
            .expect("the project can make a challenge");
        let expected = control.expected.as_ref().expect("the first slot is a control");
        assert!(
            controls
                .iter()
                .any(|(id, l)| *id == control.image && expected.as_str() == *l),
            "not a control with its answer: {control:?}"
        );
        assert_eq!(other.expected, None, "an unknown is served while there is one");
        assert!(unknowns.contains(&other.image), "not an unknown: {other:?}");
        seen_unknowns.insert(other.image);
    }
    assert_eq!(seen_unknowns.len(), 2, "every unknown gets served");

    // Without unknowns, two distinct controls; the abstain gold is never one of them.
    let gold_only = store
        .create_project(
            new_project("gold only"),
            vec![
                image("c1", Some("flat")),
                image("c2", Some("east_west")),
                image("abstain", Some("other")),
            ],
        )
        .await
        .expect("create");
    let abstain = store.images(gold_only.id).await.expect("list")[2].id;
    for _ in 0..20 {
        let [a, b] = store
            .pick_slots(gold_only.id)
            .await
            .expect("pick")
            .expect("two controls");
        assert!(a.expected.is_some() && b.expected.is_some());
        assert_ne!(a.image, b.image);
        assert!(a.image != abstain && b.image != abstain);
    }

    // One control and nothing else cannot make a challenge; neither can an unknown project.
    let lonely = store
        .create_project(new_project("lonely"), vec![image("c1", Some("flat"))])
        .await
        .expect("create");
    assert_eq!(store.pick_slots(lonely.id).await.expect("pick"), None);
    let no_control = store
        .create_project(
            new_project("no control"),
            vec![image("u1", None), image("u2", None)],
        )
        .await
        .expect("create");
    assert_eq!(store.pick_slots(no_control.id).await.expect("pick"), None);
    assert_eq!(store.pick_slots(ProjectId(987_654)).await.expect("pick"), None);
}

async fn sites_are_found_by_key_and_by_secret_hash(store: &AnyStore) {
    let s = site(&[ProjectId(1), ProjectId(2)]);
    store.create_site(s.clone()).await.expect("create a site");
    assert_eq!(store.site(&s.sitekey).await.expect("read"), Some(s.clone()));
    assert_eq!(
        store.site_by_secret_hash(&s.secret_hash).await.expect("read"),
        Some(s.clone())
    );
    assert_eq!(
        store.site_by_secret_hash(&"0".repeat(64)).await.expect("read"),
        None
    );
    let unknown = sitekey();
    assert_eq!(store.site(&unknown).await.expect("read"), None);

    // The same sitekey twice is refused, and the first site stays as it was.
    let mut duplicate = site(&[ProjectId(3)]);
    duplicate.sitekey = s.sitekey.clone();
    assert!(matches!(
        store.create_site(duplicate).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.site(&s.sitekey).await.expect("read"), Some(s));
}

async fn challenges_and_tokens_are_taken_once(store: &AnyStore) {
    let c = challenge(ProjectId(1), 60);
    store.put_challenge(c.clone()).await.expect("put");
    assert_eq!(store.challenge(&c.id).await.expect("get"), Some(c.clone()));
    // Reading does not consume.
    assert_eq!(store.challenge(&c.id).await.expect("get"), Some(c.clone()));
    assert_eq!(store.take_challenge(&c.id).await.expect("take"), Some(c.clone()));
    assert_eq!(store.take_challenge(&c.id).await.expect("take"), None);
    assert_eq!(store.challenge(&c.id).await.expect("get"), None);
    assert_eq!(
        store.take_challenge("no-such-challenge").await.expect("take"),
        None
    );

    let t = token(60);
    store.put_token(t.clone()).await.expect("put");
    assert_eq!(store.take_token(&t.id).await.expect("take"), Some(t.clone()));
    assert_eq!(store.take_token(&t.id).await.expect("take"), None);
    assert_eq!(store.take_token("no-such-token").await.expect("take"), None);
}

async fn short_lived_records_expire(store: &AnyStore) {
    // Already expired when stored: never visible.
    let mut past = challenge(ProjectId(1), 0);
    past.expires_at = now().saturating_sub(1);
    store.put_challenge(past.clone()).await.expect("put");
    assert_eq!(store.challenge(&past.id).await.expect("get"), None);
    let mut past_token = token(0);
    past_token.expires_at = now().saturating_sub(1);
    store.put_token(past_token.clone()).await.expect("put");
    assert_eq!(store.take_token(&past_token.id).await.expect("take"), None);

    // Expiring while stored.
    let soon = challenge(ProjectId(1), 1);
    let soon_token = token(1);
    store.put_challenge(soon.clone()).await.expect("put");
    store.put_token(soon_token.clone()).await.expect("put");
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(store.challenge(&soon.id).await.expect("get"), None);
    assert_eq!(store.take_challenge(&soon.id).await.expect("take"), None);
    assert_eq!(store.take_token(&soon_token.id).await.expect("take"), None);
}

/// Fifty concurrent takes of one challenge and of one token, spread over the given instances: one winner each.
async fn concurrent_takes_give_exactly_one_winner(instances: &[&AnyStore]) {
    let c = challenge(ProjectId(1), 60);
    let t = token(60);
    instances[0].put_challenge(c.clone()).await.expect("put");
    instances[0].put_token(t.clone()).await.expect("put");
    let challenge_takes =
        join_all((0..50).map(|n| instances[n % instances.len()].take_challenge(&c.id))).await;
    let token_takes = join_all((0..50).map(|n| instances[n % instances.len()].take_token(&t.id))).await;
    let winners = challenge_takes
        .into_iter()
        .filter_map(|r| r.expect("take"))
        .count();
    assert_eq!(winners, 1, "a challenge is answered once");
    let winners = token_takes.into_iter().filter_map(|r| r.expect("take")).count();
    assert_eq!(winners, 1, "a token is redeemed once");
}

async fn contributions_are_kept_in_order_per_project(store: &AnyStore) {
    let a = store
        .create_project(new_project("votes a"), vec![image("u", None)])
        .await
        .expect("create");
    let b = store
        .create_project(new_project("votes b"), vec![image("u", None)])
        .await
        .expect("create");
    assert!(store.contributions(a.id).await.expect("read").is_empty());
    let mut sent = Vec::new();
    for n in 0..25 {
        let (project, l) = if n % 3 == 0 {
            (b.id, "flat")
        } else {
            (a.id, "east_west")
        };
        let c = contribution(project, n, l);
        let seq = store.add_contribution(c.clone()).await.expect("add");
        sent.push((seq, c));
    }
    // Concurrent writers each get their own sequence number.
    let concurrent = join_all((100..130).map(|n| {
        let c = contribution(a.id, n, "north_south");
        async move { (store.add_contribution(c.clone()).await.expect("add"), c) }
    }))
    .await;
    sent.extend(concurrent);

    for project in [a.id, b.id] {
        let stored = store.contributions(project).await.expect("read");
        let expected: Vec<_> = sent.iter().filter(|(_, c)| c.project == project).collect();
        assert_eq!(stored.len(), expected.len(), "every contribution, once");
        let seqs: Vec<u64> = stored.iter().map(|s| s.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "increasing sequence numbers: {seqs:?}"
        );
        for s in &stored {
            let (_, c) = expected
                .iter()
                .find(|(seq, _)| *seq == s.seq)
                .expect("the stored sequence number is the one returned");
            assert_eq!(&s.contribution, c);
        }
    }
}

async fn instances_share_one_truth(first: &AnyStore, second: &AnyStore) {
    let project = first
        .create_project(
            new_project("shared"),
            vec![image("c", Some("flat")), image("u", None)],
        )
        .await
        .expect("create");
    assert_eq!(
        second.project(project.id).await.expect("read"),
        Some(project.clone())
    );
    assert!(second.pick_slots(project.id).await.expect("pick").is_some());
    let shared_site = site(&[project.id]);
    first.create_site(shared_site.clone()).await.expect("create site");
    assert_eq!(
        second.site(&shared_site.sitekey).await.expect("read"),
        Some(shared_site.clone())
    );
    assert!(matches!(
        second.create_site(shared_site).await,
        Err(StoreError::Conflict(_))
    ));

    // A challenge issued by one instance is answered at the other, and only once.
    let pending = challenge(project.id, 60);
    first.put_challenge(pending.clone()).await.expect("put");
    assert_eq!(
        second.take_challenge(&pending.id).await.expect("take"),
        Some(pending.clone())
    );
    assert_eq!(first.take_challenge(&pending.id).await.expect("take"), None);
    let outstanding = token(60);
    second.put_token(outstanding.clone()).await.expect("put");
    assert_eq!(
        first.take_token(&outstanding.id).await.expect("take"),
        Some(outstanding)
    );

    // Contributions from both land in one log, with distinct sequence numbers.
    let x = first
        .add_contribution(contribution(project.id, 1, "flat"))
        .await
        .expect("add");
    let y = second
        .add_contribution(contribution(project.id, 1, "flat"))
        .await
        .expect("add");
    assert_ne!(x, y);
    assert_eq!(first.contributions(project.id).await.expect("read").len(), 2);
}

#[tokio::test]
async fn the_embedded_store_passes_the_acceptance_suite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    acceptance_test_suite(
        move || AnyStore::Embedded(EmbeddedStore::open(&path).expect("open the embedded store")),
        Capabilities {
            shared_between_instances: false,
        },
    )
    .await;
}

fn open_redis(durable: &str, ephemeral: Option<&str>) -> AnyStore {
    AnyStore::Redis(RedisStore::open(durable, ephemeral).expect("open the Redis store"))
}

/// Deletes keys with `redis-cli`, following the cluster's redirections (`-c`) when the node is in a cluster.
fn delete_keys(node: &RedisServer, keys: &[String]) {
    for key in keys {
        let out = std::process::Command::new("redis-cli")
            .args(["-c", "-p", &node.port.to_string(), "DEL", key])
            .output()
            .expect("redis-cli runs");
        assert!(out.status.success(), "DEL {key}: {out:?}");
    }
}

/// Data a Redis store wrote before the owner API has no image index and no site index: it gets them on first
/// use. Made here by removing them from fresh data.
async fn older_redis_data_is_indexed_on_first_use(node: &RedisServer, url: &str) {
    let store = open_redis(url, None);
    let project = store
        .create_project(
            new_project("older"),
            vec![image("a", None), image("b", Some("flat"))],
        )
        .await
        .expect("create");
    let s = site(&[project.id]);
    store.create_site(s.clone()).await.expect("create");
    let p = project.id;
    delete_keys(
        node,
        &[
            format!("cobot:{{p{p}}}:image-ids"),
            format!("cobot:{{p{p}}}:content-hashes"),
            "cobot:sites".to_owned(),
            "cobot:sites-indexed".to_owned(),
        ],
    );
    let before = store.images(p).await.expect("list");
    // Adding first: the dedup sees the older images, and the index then holds them all, not only the new one.
    let added = store
        .add_images(p, vec![same_content("a again", "a"), image("c", None)])
        .await
        .expect("add");
    assert_eq!(added[0], AddedImage::Duplicate(named(&before, "a")));
    let c = stored(&added[1]).clone();
    let mut expected = before;
    expected.push(c);
    assert_eq!(store.images_page(p, None, 1000).await.expect("page"), expected);
    assert!(
        store.sites().await.expect("list").contains(&s),
        "the older site is listed"
    );
    assert!(store.projects().await.expect("list").contains(&project));

    // Sequence numbers with gaps (a counter moved by a step that stopped half-way): pages still start right.
    let mut seqs = Vec::new();
    for n in 0..6 {
        if n % 2 == 0 {
            let out = std::process::Command::new("redis-cli")
                .args(["-c", "-p", &node.port.to_string(), "INCRBY"])
                .arg(format!("cobot:{{p{p}}}:next-contribution"))
                .arg("5")
                .output()
                .expect("redis-cli runs");
            assert!(out.status.success(), "{out:?}");
        }
        seqs.push(
            store
                .add_contribution(contribution(p, n, "flat"))
                .await
                .expect("add"),
        );
    }
    let all = store.contributions(p).await.expect("list");
    assert_eq!(all.iter().map(|c| c.seq).collect::<Vec<_>>(), seqs);
    for (n, &seq) in seqs.iter().enumerate() {
        for after in [seq - 1, seq] {
            let start = if after == seq { n + 1 } else { n };
            assert_eq!(
                store.contributions_page(p, after, 2).await.expect("page"),
                all[start..(start + 2).min(all.len())],
                "after {after} in {seqs:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_single_redis_passes_the_acceptance_suite() {
    let redis = RedisServer::start();
    let url = redis.url();
    let suite_url = url.clone();
    acceptance_test_suite(
        move || open_redis(&suite_url, None),
        Capabilities {
            shared_between_instances: true,
        },
    )
    .await;
    older_redis_data_is_indexed_on_first_use(&redis, &url).await;
}

#[tokio::test]
async fn two_redis_durable_and_short_lived_pass_the_acceptance_suite() {
    let durable = RedisServer::start();
    // The short-lived instance may be capped and evicting, and need not persist anything.
    let ephemeral = RedisServer::start_with(&[
        "--maxmemory",
        "64mb",
        "--maxmemory-policy",
        "volatile-ttl",
        "--appendonly",
        "no",
    ]);
    let (d, e) = (durable.url(), ephemeral.url());
    acceptance_test_suite(
        move || open_redis(&d, Some(&e)),
        Capabilities {
            shared_between_instances: true,
        },
    )
    .await;

    // Each kind of data went where it belongs.
    let store = open_redis(&durable.url(), Some(&ephemeral.url()));
    let c = challenge(ProjectId(1), 60);
    store.put_challenge(c).await.expect("put");
    store.put_token(token(60)).await.expect("put");
    assert!(ephemeral.count_keys("cobot:challenge:*") >= 1);
    assert!(ephemeral.count_keys("cobot:token:*") >= 1);
    assert_eq!(durable.count_keys("cobot:challenge:*"), 0);
    assert_eq!(durable.count_keys("cobot:token:*"), 0);
    assert!(durable.count_keys("cobot:*project*") >= 1);
    assert_eq!(ephemeral.count_keys("cobot:*project*"), 0);
    assert_eq!(ephemeral.count_keys("cobot:*contribution*"), 0);
}

#[tokio::test]
async fn a_three_master_redis_cluster_passes_the_acceptance_suite() {
    let cluster = RedisCluster::start();
    let url = cluster.url();
    let suite_url = url.clone();
    acceptance_test_suite(
        move || open_redis(&suite_url, None),
        Capabilities {
            shared_between_instances: true,
        },
    )
    .await;
    older_redis_data_is_indexed_on_first_use(&cluster.nodes[0], &url).await;
    // The data is spread over the masters, not piled on one.
    let holding = cluster
        .nodes
        .iter()
        .filter(|n| n.count_keys("cobot:*") > 0)
        .count();
    assert!(holding >= 2, "keys on {holding} of 3 masters");
}

async fn batch_runs_are_kept_latest_first_and_trimmed(store: &AnyStore) {
    let project = store
        .create_project(new_project("batch runs"), vec![image("c", Some("flat"))])
        .await
        .expect("create");
    let other = store
        .create_project(new_project("batch runs other"), vec![image("c", Some("flat"))])
        .await
        .expect("create");
    assert!(store.batch_runs(project.id).await.expect("runs").is_empty());
    let run = |n: u64| BatchRun {
        at: n,
        images: n,
        votes: 0,
        model: consensus::CrowdModel::uninformed(&consensus::Policy::new(3)),
        control_failure_rate: 0.0,
        revisions: vec![RecordedRevision {
            image: ImageId(n),
            before: "open".into(),
            after: "decided:flat".into(),
        }],
    };
    let kept = u64::try_from(BATCH_RUNS_KEPT).expect("small");
    for n in 1..=kept + 2 {
        store.add_batch_run(project.id, run(n)).await.expect("add");
    }
    store.add_batch_run(other.id, run(1)).await.expect("add");
    let runs = store.batch_runs(project.id).await.expect("runs");
    assert_eq!(runs.len(), BATCH_RUNS_KEPT);
    // Latest first; the two oldest were dropped.
    assert_eq!(runs.first().map(|r| r.at), Some(kept + 2));
    assert_eq!(runs.last().map(|r| r.at), Some(3));
    assert_eq!(runs[0].revisions, run(kept + 2).revisions);
    assert_eq!(store.batch_runs(other.id).await.expect("runs").len(), 1);
}
