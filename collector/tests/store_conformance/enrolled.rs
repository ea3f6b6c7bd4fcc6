//! Agents that enrolled themselves: one enrolment per name unless the admin allows another,
//! revocation, rotation with a grace, and the generation that tells other collectors.

use chrono::Duration;
use lookout_collector::store::enrolled::Enrolled;
use lookout_config::Token;

use super::{Backend, t};

pub(super) async fn a_name_enrols_once_unless_allowed_and_revoking_and_rotating_are_stored(
    b: Backend,
) {
    let s = &*b.store;
    let first = Token::new("first-credential-of-web-1-0123456789");
    let other = Token::new("someone-else-presenting-0123456789ab");
    let g0 = s.enrolled_generation().await.unwrap();
    assert_eq!(
        s.enroll("web-1", &first.digest(), "permanent", t(0, 0))
            .await
            .unwrap(),
        Enrolled::Done
    );
    let g1 = s.enrolled_generation().await.unwrap();
    assert_ne!(g0, g1, "an enrolment changes the generation");
    // The same name again: refused, nothing changed.
    assert_eq!(
        s.enroll("web-1", &other.digest(), "ephemeral", t(0, 1))
            .await
            .unwrap(),
        Enrolled::Taken
    );
    assert_eq!(s.enrolled_generation().await.unwrap(), g1);
    let row = s.enrolled_agent("web-1").await.unwrap().unwrap();
    assert!(row.token_sha256 == first.digest());
    assert_eq!(row.lifecycle, "permanent");
    assert_eq!(row.enrolled, t(0, 0));
    assert_eq!(row.revoked, None);
    assert_eq!(s.enrolled_agent("nobody").await.unwrap(), None);

    // Rotation: the new credential's digest, the old one's until the grace ends, and the new
    // one kept until the agent has used it.
    let second = Token::new("second-credential-of-web-1-012345678");
    let until = t(0, 0) + Duration::hours(1);
    assert!(
        s.rotate_enrolled("web-1", &second, until, t(0, 2))
            .await
            .unwrap()
    );
    assert!(
        !s.rotate_enrolled("nobody", &second, until, t(0, 2))
            .await
            .unwrap()
    );
    let row = s.enrolled_agent("web-1").await.unwrap().unwrap();
    assert!(row.token_sha256 == second.digest());
    assert!(row.previous_sha256 == Some(first.digest()));
    assert_eq!(row.previous_until, Some(until));
    assert_eq!(row.rotated, Some(t(0, 2)));
    assert_eq!(
        row.rotation_pending.as_ref().map(Token::expose),
        Some(second.expose())
    );
    // Presenting the old one does not clear it; presenting the new one does.
    s.rotation_taken("web-1", &first.digest()).await.unwrap();
    assert!(
        s.enrolled_agent("web-1")
            .await
            .unwrap()
            .unwrap()
            .rotation_pending
            .is_some()
    );
    s.rotation_taken("web-1", &second.digest()).await.unwrap();
    let row = s.enrolled_agent("web-1").await.unwrap().unwrap();
    assert_eq!(row.rotation_pending, None);
    assert!(
        row.previous_sha256 == Some(first.digest()),
        "the grace stays"
    );

    // Revocation: both credentials go, and a revoked agent is not rotated.
    assert!(s.revoke_enrolled("web-1", t(0, 3)).await.unwrap());
    assert!(!s.revoke_enrolled("nobody", t(0, 3)).await.unwrap());
    let row = s.enrolled_agent("web-1").await.unwrap().unwrap();
    assert_eq!(row.revoked, Some(t(0, 3)));
    assert_eq!(row.previous_sha256, None);
    assert!(
        !s.rotate_enrolled("web-1", &other, until, t(0, 4))
            .await
            .unwrap()
    );
    assert_eq!(
        s.enroll("web-1", &other.digest(), "permanent", t(0, 4))
            .await
            .unwrap(),
        Enrolled::Taken,
        "revoked is not allowed to enrol again"
    );

    // The admin allows one more enrolment, until a time: an expired permission does nothing,
    // a live one is used up by one enrolment.
    assert!(s.allow_reenroll("web-1", t(0, 5)).await.unwrap());
    assert!(!s.allow_reenroll("nobody", t(0, 5)).await.unwrap());
    assert_eq!(
        s.enroll("web-1", &other.digest(), "ephemeral", t(0, 6))
            .await
            .unwrap(),
        Enrolled::Taken,
        "the permission had expired"
    );
    assert!(s.allow_reenroll("web-1", t(0, 10)).await.unwrap());
    assert_eq!(
        s.enroll("web-1", &other.digest(), "ephemeral", t(0, 6))
            .await
            .unwrap(),
        Enrolled::Done
    );
    let row = s.enrolled_agent("web-1").await.unwrap().unwrap();
    assert!(row.token_sha256 == other.digest());
    assert_eq!(row.revoked, None, "enrolling again ends the revocation");
    assert_eq!(row.reenroll_until, None, "the permission is used up");
    assert_eq!(row.lifecycle, "ephemeral");
    assert_eq!(row.enrolled, t(0, 6));
    assert_eq!(
        s.enroll("web-1", &first.digest(), "permanent", t(0, 7))
            .await
            .unwrap(),
        Enrolled::Taken,
        "once"
    );
    s.enroll("db-1", &first.digest(), "permanent", t(0, 8))
        .await
        .unwrap();
    let names: Vec<String> = s
        .enrolled_agents()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["db-1", "web-1"]);
    assert!(
        !format!("{:?}", s.enrolled_agents().await.unwrap()).contains("second-credential"),
        "a row's Debug does not show a pending credential"
    );
}
