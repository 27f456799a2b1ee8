"""German and English strings of the consent pages and mails."""

CATALOGUE = {
    "en": {
        "purpose.newsletter": "Newsletter by email",
        "purpose.whitepaper": "Delivery of the requested whitepaper",
        "purpose.sales_contact": "Contact by our sales team",
        "purpose.tracking": "Measuring how you use our website",
        "optin.mail.subject": "Please confirm your email address",
        "optin.mail.greeting": "Hello,",
        "optin.mail.greeting_name": "Hello {name},",
        "optin.mail.intro": "you asked us to use your email address for:",
        "optin.mail.action": "Please confirm with this link:",
        "optin.mail.button": "Confirm my email address",
        "optin.mail.ignore": (
            "If you did not ask for this, ignore this mail: without your confirmation "
            "nothing happens, and we delete the request after {days} days."
        ),
        "optin.page.title": "Confirm your request",
        "optin.page.intro": "Please confirm that you want us to use your email address for:",
        "optin.page.button": "Yes, confirm",
        "optin.done.title": "Thank you, you have confirmed",
        "optin.done.text": "Your confirmation is recorded. You can withdraw it at any time.",
        "optin.invalid.title": "This link is not valid",
        "optin.invalid.text": "The link is incomplete or was changed. Please use the link from the mail exactly as it is.",
        "optin.expired.title": "This link has expired",
        "optin.expired.text": "For your protection, confirmation links are valid for a limited time.",
        "optin.expired.button": "Send me a new link",
        "optin.resent.title": "Please check your inbox",
        "optin.resent.text": "If your request is still open, a new confirmation mail is on its way.",
    },
    "de": {
        "purpose.newsletter": "Newsletter per E-Mail",
        "purpose.whitepaper": "Zusendung des angeforderten Whitepapers",
        "purpose.sales_contact": "Kontaktaufnahme durch unseren Vertrieb",
        "purpose.tracking": "Messung Ihrer Nutzung unserer Website",
        "optin.mail.subject": "Bitte bestätigen Sie Ihre E-Mail-Adresse",
        "optin.mail.greeting": "Guten Tag,",
        "optin.mail.greeting_name": "Guten Tag {name},",
        "optin.mail.intro": "Sie haben uns gebeten, Ihre E-Mail-Adresse zu nutzen für:",
        "optin.mail.action": "Bitte bestätigen Sie mit diesem Link:",
        "optin.mail.button": "E-Mail-Adresse bestätigen",
        "optin.mail.ignore": (
            "Wenn Sie das nicht angefordert haben, ignorieren Sie diese E-Mail: Ohne Ihre "
            "Bestätigung geschieht nichts, und wir löschen die Anfrage nach {days} Tagen."
        ),
        "optin.page.title": "Anfrage bestätigen",
        "optin.page.intro": "Bitte bestätigen Sie, dass wir Ihre E-Mail-Adresse nutzen dürfen für:",
        "optin.page.button": "Ja, bestätigen",
        "optin.done.title": "Vielen Dank, Sie haben bestätigt",
        "optin.done.text": "Ihre Bestätigung ist gespeichert. Sie können sie jederzeit widerrufen.",
        "optin.invalid.title": "Dieser Link ist ungültig",
        "optin.invalid.text": "Der Link ist unvollständig oder wurde verändert. Bitte nutzen Sie den Link aus der E-Mail unverändert.",
        "optin.expired.title": "Dieser Link ist abgelaufen",
        "optin.expired.text": "Zu Ihrem Schutz gelten Bestätigungslinks nur eine begrenzte Zeit.",
        "optin.expired.button": "Neuen Link senden",
        "optin.resent.title": "Bitte sehen Sie in Ihr Postfach",
        "optin.resent.text": "Wenn Ihre Anfrage noch offen ist, ist eine neue Bestätigungs-E-Mail unterwegs.",
    },
}
