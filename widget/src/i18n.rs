//! The widget's own sentences, in French (the default) and English.
//!
//! The question, the label texts and the image descriptions come from the server, already in the asked
//! language; what is here is the frame around them. French uses typographic apostrophes and a no-break space
//! before `? ! : ;`, as a French reader expects.

use protocol::Lang;

/// Every sentence the widget writes itself.
pub struct Texts {
    pub title: &'static str,
    /// Says what the two answers are for, so nobody is surprised that one of them is harvested.
    pub about: &'static str,
    /// `Image 1 sur 2`, built from these two halves and the numbers (no `format!`: it weighs on the wasm).
    pub image: &'static str,
    pub of: &'static str,
    pub verify: &'static str,
    pub hint: &'static str,
    pub loading: &'static str,
    pub checking: &'static str,
    pub verified_badge: &'static str,
    pub verified: &'static str,
    pub wrong_answer: &'static str,
    pub question_expired: &'static str,
    pub expired: &'static str,
    pub new_check: &'static str,
    pub retry: &'static str,
    pub network_error: &'static str,
    pub server_error: &'static str,
    pub too_many: &'static str,
    pub misconfigured: &'static str,
    /// The accessible path: the button that switches to it, what it does, the way back, its progress.
    pub use_pow: &'static str,
    pub pow_explain: &'static str,
    pub use_images: &'static str,
    pub computing: &'static str,
    pub pow_about: &'static str,
}

pub static FR: Texts = Texts {
    title: "Vérification anti-robot",
    about: "Répondez pour les deux images. L’une permet de vérifier que vous n’êtes pas un robot\u{a0}; \
            votre réponse sur l’autre aide un projet d’intérêt public.",
    image: "Image ",
    of: " sur ",
    verify: "Valider",
    hint: "Choisissez une réponse pour chaque image, puis validez.",
    loading: "Chargement de la question…",
    checking: "Vérification en cours…",
    verified_badge: "Vérifié",
    verified: "Vérification réussie. Vous pouvez envoyer le formulaire.",
    wrong_answer: "Réponse incorrecte. Voici une nouvelle question.",
    question_expired: "La question a expiré. En voici une nouvelle.",
    expired: "La vérification a expiré. Recommencez, s’il vous plaît.",
    new_check: "Nouvelle vérification",
    retry: "Réessayer",
    network_error: "Impossible de joindre le service de vérification. Vérifiez votre connexion, puis réessayez.",
    server_error: "Le service de vérification n’a pas pu répondre. Réessayez dans un instant.",
    too_many: "Trop de tentatives. Patientez une minute avant de réessayer.",
    misconfigured: "La vérification est mal configurée sur ce site. Prévenez son gestionnaire, s’il vous plaît.",
    use_pow: "Je ne peux pas répondre à la question en images",
    pow_explain: "Votre appareil va effectuer un petit calcul pour vérifier que vous n’êtes pas un robot, \
                  cela prend quelques secondes.",
    use_images: "Revenir à la question en images",
    computing: "Calcul en cours, patientez quelques secondes…",
    pow_about: "Aucune réponse n’est demandée ni enregistrée.",
};

pub static EN: Texts = Texts {
    title: "Human check",
    about: "Answer for both images. One of them checks that you are not a robot; \
            your answer on the other helps a public-interest project.",
    image: "Image ",
    of: " of ",
    verify: "Verify",
    hint: "Choose an answer for each image, then verify.",
    loading: "Loading the question…",
    checking: "Checking…",
    verified_badge: "Verified",
    verified: "Verified. You can now submit the form.",
    wrong_answer: "That answer was not right. Here is a new question.",
    question_expired: "The question expired. Here is a new one.",
    expired: "The check has expired. Please start again.",
    new_check: "New check",
    retry: "Try again",
    network_error: "The verification service cannot be reached. Check your connection, then try again.",
    server_error: "The verification service could not answer. Please try again in a moment.",
    too_many: "Too many attempts. Please wait a minute before trying again.",
    misconfigured: "The check is misconfigured on this site. Please tell the site’s administrators.",
    use_pow: "I can’t answer the image question",
    pow_explain: "Your device will do a small computation to check that you are not a robot; \
                  it takes a few seconds.",
    use_images: "Back to the image question",
    computing: "Computing, please wait a few seconds…",
    pow_about: "Nothing is asked of you and nothing is recorded.",
};

pub fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Fr => &FR,
        Lang::En => &EN,
    }
}

/// `Image 1 sur 2`: positions count from one for people.
pub fn image_caption(t: &Texts, index: usize, count: usize) -> String {
    let mut s = String::with_capacity(16);
    s.push_str(t.image);
    push_small(&mut s, index + 1);
    s.push_str(t.of);
    push_small(&mut s, count);
    s
}

/// Writes a small number without the `fmt` machinery.
fn push_small(s: &mut String, n: usize) {
    if n >= 10 {
        push_small(s, n / 10);
    }
    s.push(char::from(b'0' + u8::try_from(n % 10).unwrap_or(0)));
}
