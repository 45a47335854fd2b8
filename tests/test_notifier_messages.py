"""Texts in English and Spanish: what they say, their encoding and segment count."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.messages import (
    ClinicInfo,
    delay_message,
    encoding_of,
    household_message,
    reply_message,
    segment_count,
)
from notifier.policy import TextCandidate, TextDecision

TZ = ZoneInfo("America/Chicago")
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=TZ)
CLINIC = ClinicInfo("Oakwood Vets", "+1 555 010 0000")
LINK = "https://oakwood.example/r/eyJ2IjoiYTEifQ.abcdefghijklmnop"


def decision(kind: str = "delay", seq: int = 1, **kw: object) -> TextDecision:
    sched = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
    c = TextCandidate(
        visit_id="a1", kind="appointment", pet_name="Bella", pet_sex="female", vet_name="Dr. Ruiz",
        scheduled=sched, arrived=None, start=sched + timedelta(minutes=42), p10=sched + timedelta(minutes=35),
        p90=sched + timedelta(minutes=50), to_number="+15555550123", consent=True, tz=TZ, reason="emergency",
    )
    return TextDecision(candidate=replace(c, **kw), kind=kind, seq=seq, at=NOW, day=NOW.date())  # type: ignore[arg-type]


def test_english_delay_text_says_pet_vet_reason_range_and_offer() -> None:
    m = delay_message(decision(), CLINIC, LINK)
    assert m.body.startswith("Oakwood Vets: Dr. Ruiz is with an emergency, so Bella's 10:00 AM visit will likely "
                             "start about 35-50 min later than planned (10:35 AM-10:50 AM).")
    assert "You can come later, by 10:30 AM." in m.body
    assert f"Reply 1 to keep your place, 2 to reschedule, or tap {LINK} ." in m.body
    assert m.encoding == "GSM-7" and m.segments == 2


def test_waiting_client_is_not_told_to_come_later_and_pronoun_follows_sex() -> None:
    her = delay_message(decision(arrived=NOW), CLINIC, LINK).body
    assert "we're sorry, Dr. Ruiz is with an emergency" in her and "We'll see her as soon" in her
    assert "come later" not in her
    him = delay_message(decision(arrived=NOW, pet_sex="male", pet_name="Max"), CLINIC, LINK).body
    assert "We'll see him as soon" in him and "Max's 10:00 AM visit" in him
    unknown = delay_message(decision(arrived=NOW, pet_sex=None), CLINIC, LINK).body
    assert "We'll see Bella as soon" in unknown


def test_spanish_delay_text_stays_gsm7() -> None:
    m = delay_message(decision(language="es"), CLINIC, LINK)
    assert m.body.startswith("Oakwood Vets: Dr. Ruiz atiende una emergencia, por eso la consulta de Bella de las "
                             "10:00 probablemente empiece con unos 35-50 min de retraso (10:35-10:50).")
    assert "Responda 1 para mantener su turno, 2 para cambiar la cita" in m.body
    assert m.encoding == "GSM-7"
    waiting = delay_message(decision(language="es", arrived=NOW), CLINIC, LINK).body
    assert "La atenderemos lo antes posible." in waiting
    male = delay_message(decision(language="es-MX", arrived=NOW, pet_sex="male"), CLINIC).body
    assert "Lo atenderemos" in male


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("reason", ["emergency", "running_late", "overrun", None])
@pytest.mark.parametrize("kind", ["delay", "later", "earlier"])
def test_every_template_is_gsm7_and_at_most_three_segments(lang: str, reason: str | None, kind: str) -> None:
    for arrived in (None, NOW):
        m = delay_message(decision(kind, seq=2 if kind != "delay" else 1, language=lang, reason=reason,
                                   arrived=arrived), CLINIC, LINK)
        assert m.encoding == "GSM-7", m.body
        assert m.segments <= 3, m.body
        assert "http" in m.body and "bit.ly" not in m.body


def test_follow_up_texts_say_what_changed() -> None:
    later = delay_message(decision("later", 2), CLINIC).body
    assert later.startswith("Oakwood Vets update: Bella's 10:00 AM visit now looks likely to start about 35-50")
    assert "Reply 1 to keep your place or 2 to reschedule." in later and "STOP" not in later
    earlier = delay_message(decision("earlier", 2, p10=datetime(2026, 3, 2, 10, 0, tzinfo=TZ)), CLINIC).body
    assert "good news, Dr. Ruiz is catching up" in earlier and "Please come by 10:00 AM." in earlier


def test_walkin_text_gives_clock_times() -> None:
    m = delay_message(decision(kind="delay", scheduled=None, arrived=NOW), CLINIC)
    assert "Bella's visit will likely start around 10:35 AM-10:50 AM, later than we first said" in m.body


def test_first_text_says_how_to_opt_out() -> None:
    assert "STOP to opt out." in delay_message(decision(), CLINIC, LINK).body
    assert "STOP para no recibir mensajes." in delay_message(decision(language="es"), CLINIC, LINK).body


def test_non_gsm_pet_name_switches_to_ucs2_and_counts_70_67() -> None:
    m = delay_message(decision(pet_name="Zoë 🐶"), CLINIC, LINK)  # ë is not in GSM-7, 🐶 neither
    assert m.encoding == "UCS-2"
    assert m.segments == segment_count(m.body) >= 4


def test_segment_counts_at_the_boundaries() -> None:
    assert segment_count("a" * 160) == 1 and segment_count("a" * 161) == 2
    assert segment_count("a" * 306) == 2 and segment_count("a" * 307) == 3
    assert segment_count("€" * 80) == 1 and segment_count("€" * 81) == 2  # extension chars cost two
    assert segment_count("á" * 70) == 1 and segment_count("á" * 71) == 2
    assert segment_count("á" * 134) == 2 and segment_count("á" * 135) == 3
    assert segment_count("🐶" * 35) == 1 and segment_count("🐶" * 36) == 2  # surrogate pairs
    assert encoding_of("ñ¿¡éü") == "GSM-7" and encoding_of("á") == "UCS-2"


def test_typographic_dashes_and_quotes_do_not_force_ucs2() -> None:
    m = delay_message(decision(vet_name="Dr. O’Neil – Ruiz"), CLINIC)
    assert m.encoding == "GSM-7" and "Dr. O'Neil - Ruiz" in m.body


@pytest.mark.parametrize("lang", ["en", "es"])
def test_reply_texts_in_both_languages(lang: str) -> None:
    for kind in ("keep", "optout", "optin", "help", "other"):
        m = reply_message(kind, lang, CLINIC)  # type: ignore[arg-type]
        assert m.body.startswith("Oakwood Vets") and m.encoding == "GSM-7" and m.segments == 1, m.body
    assert "(555) 010-0000" in reply_message("help", lang, CLINIC).body  # the national format, not E.164
    assert LINK in reply_message("reschedule", lang, CLINIC, LINK).body
    # No link (no visit found): a way to reach a person instead.
    assert "(555) 010-0000" in reply_message("reschedule", lang, CLINIC).body


def test_no_promotional_words_in_any_text() -> None:
    bodies = [delay_message(decision(k, language=lang), CLINIC, LINK).body
              for k in ("delay", "later", "earlier") for lang in ("en", "es")]
    bodies += [reply_message(k, lang, CLINIC, LINK).body  # type: ignore[arg-type]
               for k in ("keep", "reschedule", "optout", "optin", "help", "other") for lang in ("en", "es")]
    for b in bodies:
        low = b.lower()
        for word in ("offer", "discount", "% off", "sale", "promo", "free", "oferta", "descuento", "gratis"):
            assert word not in low, (word, b)


@pytest.mark.parametrize("lang", ["en", "es"])
def test_household_text_names_every_pet_with_its_own_time_and_link(lang: str) -> None:
    """One phone, two pets behind in one round: one text, each pet with its booked time, its
    range and its own reschedule link; the offer speaks of both ("your places")."""
    max_ = decision(arrived=NOW, pet_name="Max", pet_sex="male", language=lang, visit_id="a1")
    bella = decision(language=lang, visit_id="a2", scheduled=datetime(2026, 3, 2, 10, 30, tzinfo=TZ),
                     p10=datetime(2026, 3, 2, 11, 5, tzinfo=TZ), start=datetime(2026, 3, 2, 11, 10, tzinfo=TZ),
                     p90=datetime(2026, 3, 2, 11, 20, tzinfo=TZ))
    m = household_message([max_, bella], CLINIC, [LINK + "1", LINK + "2"])
    body = m.body
    assert body.count("Oakwood Vets") == 1
    assert "Max" in body and "Bella" in body
    assert f"Max {LINK}1" in body and f"Bella {LINK}2" in body
    if lang == "es":
        assert "Max, cita de las 10:00: unos 35-50 min de retraso" in body and "Bella, cita de las 10:30" in body
        assert "Responda 1 para mantener sus turnos" in body and "emergencia" in body
        assert "puede venir hasta las" in body  # Bella has not arrived yet
    else:
        assert "Max's 10:00 AM visit: about 35-50 min late" in body and "Bella's 10:30 AM visit:" in body
        assert "Reply 1 to keep your places" in body and "emergency" in body
        assert "you can come by 11:00 AM" in body
        assert "We'll see them as soon as we can." in body  # Max is in the lobby
    assert m.encoding == "GSM-7"
    assert household_message([max_], CLINIC, [LINK]) == delay_message(max_, CLINIC, LINK)


def test_spanish_texts_give_the_vet_title_and_article() -> None:
    """ "la Dra. Ana Ruiz atiende una emergencia"; "de" + "el" contracts: "del Dr. Okafor"."""
    her = delay_message(decision(language="es", vet_name="Dr. Ana Ruiz", vet_title="Dra."), CLINIC, LINK).body
    assert "la Dra. Ana Ruiz atiende una emergencia" in her and "Dr. Ana" not in her.replace("Dra. Ana", "")
    his = delay_message(decision(language="es", vet_name="Dr. Ben Okafor", vet_title="Dr.", reason="overrun"),
                        CLINIC).body
    assert "las consultas anteriores del Dr. Ben Okafor se alargaron" in his
    english = delay_message(decision(vet_name="Dr. Ana Ruiz", vet_title="Dra."), CLINIC).body
    assert "Dr. Ana Ruiz is with an emergency" in english
