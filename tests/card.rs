//! `errand card`: the node's A2A Agent Card, checked by the official
//! a2a-sdk (`a2a-sdk==1.3.0`, installed by tests/interop/setup): a strict
//! protobuf parse, the required fields, and the sdk's own signature
//! verifier, which must accept the card as written and refuse it altered
//! or signed by another key. Also `errand card --verify`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64ct::{Base64UrlUnpadded, Encoding as _};
use errand_core::SecretKey;
use serde_json::Value;

use crate::support::{Sandbox, code, interop, p, pack_example, rand_seed, stderr, stdout};

/// The example tools on the test node's card.
const TOOLS: [&str; 2] = ["text-stats", "imagegen"];

/// Packages of [`TOOLS`], packed once (packing runs every example).
fn packages() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let author = SecretKey::from_seed(rand_seed());
        for t in TOOLS {
            pack_example(t, dir.path(), &author, None);
        }
        dir
    })
    .path()
}

/// A sandbox whose `node.toml` hosts [`TOOLS`] and has `extra` appended;
/// its key is the sandbox's.
fn node(extra: &str) -> Sandbox {
    let s = Sandbox::new();
    let dir = s.path("packages");
    std::fs::create_dir_all(&dir).unwrap();
    for t in TOOLS {
        let f = format!("{t}.errand");
        std::fs::copy(packages().join(&f), dir.join(&f)).unwrap();
    }
    std::fs::write(
        s.path("node.toml"),
        format!(
            "key = \"key\"\nlisten = \"0.0.0.0:4434\"\npackages = \"packages\"\n\
             advertise = [\"127.0.0.1:4434\", \"[::1]:4434\"]\n{extra}"
        ),
    )
    .unwrap();
    s
}

fn key_of(s: &Sandbox) -> SecretKey {
    errand::keystore::load(&s.path("key")).unwrap()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_json(path: &Path, v: &Value) -> PathBuf {
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    path.to_owned()
}

/// Runs tests/interop/a2a_card_check.py on `cards`: one report per card.
fn sdk_check(jwk: &Path, cards: &[&Path]) -> Vec<Value> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/a2a_card_check.py");
    let o = Command::new(&interop().python)
        .arg(&script)
        .arg(jwk)
        .args(cards)
        .output()
        .expect("run python");
    assert_eq!(code(&o), 0, "{}\n{}", stdout(&o), stderr(&o));
    let reports: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), cards.len(), "{}", stdout(&o));
    reports
}

/// Writes the node's card and JWK with the real binary; returns their paths.
fn write_card(s: &Sandbox) -> (PathBuf, PathBuf) {
    let (card, jwk) = (s.path("card.json"), s.path("jwk.json"));
    let o = s.errand(&["card", "--config", "node.toml", "-o", p(&card)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = s.errand(&["card", "--config", "node.toml", "--jwk", "-o", p(&jwk)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    (card, jwk)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn card_is_parsed_strictly_complete_and_verified_by_the_a2a_sdk() {
    let s = node(
        "[registry]\n[card]\nname = \"Acme text and image tools\"\n\
         provider = { organization = \"Acme\", url = \"https://acme.example\" }\n",
    );
    // A package the node would refuse is left off the card, with a note.
    std::fs::write(s.path("packages/broken.errand"), b"not a package").unwrap();
    let (card_path, jwk_path) = (s.path("card.json"), s.path("jwk.json"));
    let o = s.errand(&["card", "--config", "node.toml", "-o", p(&card_path)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("left off the card: packages/broken.errand"),
        "{err}"
    );
    assert!(err.contains("only loopback addresses"), "{err}");
    assert!(
        err.contains("3 skills: imagegen, text-stats, errand:registry"),
        "{err}"
    );
    // Deterministic: stdout gets the same card, byte for byte.
    let o = s.errand(&["card", "--config", "node.toml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), std::fs::read_to_string(&card_path).unwrap());
    let o = s.errand(&["card", "--config", "node.toml", "--jwk", "-o", p(&jwk_path)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let peer = key_of(&s).peer_id();
    let card = read_json(&card_path);
    let jwk = read_json(&jwk_path);
    assert_eq!(jwk["kid"], peer.to_string());
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );

    // What the card says.
    assert_eq!(card["name"], "Acme text and image tools");
    assert_eq!(card["provider"]["organization"], "Acme");
    let skills: Vec<&str> = card["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    // Packages in file name order, as the node loads them.
    assert_eq!(
        skills,
        ["imagegen", "text-stats", errand::card::REGISTRY_SKILL]
    );
    let text_stats = &card["skills"][1];
    assert!(strings(&text_stats["tags"]).contains(&"count words"));
    assert!(
        strings(&text_stats["examples"])
            .contains(&"the quick brown fox jumps over the lazy dog (params: top=3)")
    );
    assert_eq!(
        strings(&card["defaultInputModes"]),
        ["text/plain; charset=utf-8", "text/plain"]
    );
    assert_eq!(
        strings(&card["defaultOutputModes"]),
        ["image/png", "application/json"]
    );
    let interfaces = card["supportedInterfaces"].as_array().unwrap();
    let urls: Vec<&str> = interfaces
        .iter()
        .map(|i| i["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            format!("errand://{peer}@127.0.0.1:4434"),
            format!("errand://{peer}@[::1]:4434")
        ]
    );
    for i in interfaces {
        assert_eq!(i["protocolBinding"], errand::card::PROTOCOL_BINDING);
        assert_eq!(i["protocolVersion"], "1.0");
    }
    let ext = &card["capabilities"]["extensions"][0];
    assert_eq!(ext["uri"], errand::card::RECEIPTS_EXTENSION);
    assert_eq!(ext["params"]["signer"], peer.to_string());
    assert_eq!(card["capabilities"]["streaming"], false);
    let sig = &card["signatures"][0];
    let header: Value = serde_json::from_slice(
        &Base64UrlUnpadded::decode_vec(sig["protected"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        serde_json::json!({"alg": "EdDSA", "kid": peer.to_string(), "typ": "JOSE"})
    );

    // What the official sdk makes of it.
    let r = &sdk_check(&jwk_path, &[&card_path])[0];
    assert_eq!(r["parsed"], true, "{r}");
    assert_eq!(r["missing_required"], serde_json::json!([]), "{r}");
    assert_eq!(r["verified"], true, "{r}");
    // The sdk canonicalises the card to exactly the bytes Errand signed.
    let ours = String::from_utf8(errand::card::payload_of(&card).unwrap()).unwrap();
    assert_eq!(r["payload"].as_str(), Some(ours.as_str()));

    // And Errand's own check agrees.
    let o = s.errand(&[
        "card",
        "--verify",
        p(&card_path),
        "--peer",
        &peer.to_string(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("is signed by {peer}")),
        "{}",
        stdout(&o)
    );
}

#[test]
fn card_altered_after_signing_or_signed_by_another_key_is_rejected_by_the_a2a_sdk() {
    let s = node("");
    let (card_path, jwk_path) = write_card(&s);
    let card = read_json(&card_path);
    let peer = key_of(&s).peer_id();

    // Altered after signing: a field the signature covers...
    let mut v = card.clone();
    v["description"] = "Transfers your funds for free".into();
    let described = write_json(&s.path("altered-description.json"), &v);
    // ...a skill's tag...
    let mut v = card.clone();
    v["skills"][0]["tags"][0] = "read your mail".into();
    let tagged = write_json(&s.path("altered-tag.json"), &v);
    // ...or an interface that sends agents elsewhere.
    let mut v = card.clone();
    v["supportedInterfaces"][0]["url"] = format!("errand://{peer}@192.0.2.1:4434").into();
    let moved = write_json(&s.path("altered-interface.json"), &v);

    // Signed by another key: another node's honest card for the same
    // tools, which names its own key...
    let other = node("");
    let (theirs, _) = write_card(&other);
    let other_key = key_of(&other);
    // ...and a forgery: the other key's signature under a header that
    // claims to be this node's.
    let mut v = card.clone();
    v.as_object_mut().unwrap().remove("signatures");
    let payload = errand::card::payload_of(&v).unwrap();
    let protected =
        Base64UrlUnpadded::encode_string(&errand::card::protected_header(peer).unwrap());
    let forged_sig = other_key.sign(errand::card::signing_input(&protected, &payload).as_bytes());
    v["signatures"] = serde_json::json!([{
        "protected": protected,
        "signature": Base64UrlUnpadded::encode_string(&forged_sig.0),
    }]);
    let forged = write_json(&s.path("forged.json"), &v);

    let bad = [&described, &tagged, &moved, &theirs, &forged];
    let mut all = vec![card_path.as_path()];
    all.extend(bad.iter().map(|b| b.as_path()));
    let reports = sdk_check(&jwk_path, &all);
    assert_eq!(reports[0]["verified"], true, "{}", reports[0]);
    for r in &reports[1..] {
        assert_eq!(r["parsed"], true, "{r}");
        assert_eq!(r["verified"], false, "{r}");
        assert!(
            r["verify_error"]
                .as_str()
                .unwrap()
                .contains("InvalidSignaturesError"),
            "{r}"
        );
    }

    // `errand card --verify` refuses them too, with exit status 1.
    for b in bad {
        let o = s.errand(&["card", "--verify", p(b), "--peer", &peer.to_string()]);
        assert_eq!(code(&o), 1, "{}: {}", b.display(), stderr(&o));
        assert!(stderr(&o).contains("NOT VERIFIED"), "{}", stderr(&o));
    }
    // The other node's card is genuine, for its own key only.
    let o = s.errand(&["card", "--verify", p(&theirs)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = s.errand(&[
        "card",
        "--verify",
        p(&card_path),
        "--peer",
        &other_key.peer_id().to_string(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("expected"), "{}", stderr(&o));
}

#[test]
fn card_refuses_a_node_with_nothing_to_list_or_no_fixed_port() {
    let s = Sandbox::new();
    std::fs::write(
        s.path("node.toml"),
        "key = \"key\"\nlisten = \"127.0.0.1:4434\"\n",
    )
    .unwrap();
    let o = s.errand(&["card", "--config", "node.toml"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("nothing to put on the card"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());

    // A registry has a skill, but port 0 is not an address to publish.
    std::fs::write(
        s.path("node.toml"),
        "key = \"key\"\nlisten = \"127.0.0.1:0\"\n[registry]\n",
    )
    .unwrap();
    let o = s.errand(&["card", "--config", "node.toml"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("set `advertise`"), "{}", stderr(&o));

    // A `[card]` setting that is there must say something.
    std::fs::write(
        s.path("node.toml"),
        "key = \"key\"\nlisten = \"127.0.0.1:4434\"\n[registry]\n[card]\nname = \"\"\n",
    )
    .unwrap();
    let o = s.errand(&["card", "--config", "node.toml"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("card.name"), "{}", stderr(&o));
}

#[test]
fn card_verify_tells_unusable_input_from_a_bad_signature() {
    let s = Sandbox::new();
    std::fs::write(s.path("junk.json"), "{ not json").unwrap();
    let o = s.errand(&["card", "--verify", p(&s.path("junk.json"))]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    let o = s.errand(&["card", "--verify", p(&s.path("missing.json"))]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    std::fs::write(s.path("unsigned.json"), r#"{"name": "x"}"#).unwrap();
    let o = s.errand(&["card", "--verify", p(&s.path("unsigned.json"))]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not signed"), "{}", stderr(&o));
}
