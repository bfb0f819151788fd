//! Questionnaire forms: what a form is (its questions), the two built-in forms (symptoms and
//! anamnesis, version 1 of each), and the checks of a form a clinic publishes and of the answers
//! a patient gives. A form never changes: a new version is a new form, and a questionnaire keeps
//! the version it was assigned with.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// The kinds of questionnaire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// What troubles the patient now, before this consultation.
    Symptoms,
    /// The patient's medical history.
    Anamnesis,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Symptoms, Kind::Anamnesis];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Symptoms => "symptoms",
            Kind::Anamnesis => "anamnesis",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How a question is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    /// Free text, several lines (up to 4,000 characters).
    Text,
    /// One line (up to 300 characters).
    Line,
    /// One of `options`.
    Choice,
    /// Any of `options` (a list without repeats).
    Multi,
    /// `true` or `false`.
    YesNo,
    /// A number, within `min`..`max` when given.
    Number,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
}

/// One question of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Question {
    /// The answer's key: `a-z`, digits and `_`, starting with a letter, up to 40 characters.
    pub id: String,
    pub label: String,
    #[serde(rename = "type")]
    pub kind: QuestionType,
    /// A submitted questionnaire has an answer to it.
    #[serde(default)]
    pub required: bool,
    /// For `choice` and `multi`: 2 to 20 options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// A line under the question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

const TEXT_MAX: usize = 4000;
const LINE_MAX: usize = 300;
pub const QUESTIONS_MAX: usize = 60;

/// A form as it is published: a title and its questions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FormBody {
    pub title: String,
    pub questions: Vec<Question>,
}

fn q(id: &str, label: &str, kind: QuestionType, required: bool, options: &[&str]) -> Question {
    Question {
        id: id.into(),
        label: label.into(),
        kind,
        required,
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        min: None,
        max: None,
        hint: None,
    }
}

/// Version 1 of each kind, used until the clinic publishes its own.
pub fn builtin(kind: Kind) -> FormBody {
    use QuestionType::*;
    match kind {
        Kind::Symptoms => FormBody {
            title: "Анкета перед консультацией: жалобы".into(),
            questions: vec![
                Question {
                    hint: Some("Опишите своими словами: что, где, как часто.".into()),
                    ..q("complaints", "Что вас беспокоит?", Text, true, &[])
                },
                q(
                    "since",
                    "Когда это началось?",
                    Choice,
                    true,
                    &[
                        "Сегодня",
                        "1–3 дня назад",
                        "Около недели назад",
                        "Больше месяца назад",
                    ],
                ),
                q(
                    "impact",
                    "Насколько это мешает обычным делам?",
                    Choice,
                    false,
                    &["Не мешает", "Немного мешает", "Сильно мешает"],
                ),
                Question {
                    min: Some(34.0),
                    max: Some(43.0),
                    hint: Some("Если не измеряли — оставьте пустым.".into()),
                    ..q("temperature", "Температура тела, °C", Number, false, &[])
                },
                q(
                    "medicines",
                    "Что вы уже принимали от этого?",
                    Text,
                    false,
                    &[],
                ),
            ],
        },
        Kind::Anamnesis => FormBody {
            title: "Анкета о здоровье (анамнез)".into(),
            questions: vec![
                q("chronic", "Хронические заболевания", Text, false, &[]),
                q(
                    "allergy",
                    "Есть ли у вас аллергия на лекарства?",
                    YesNo,
                    true,
                    &[],
                ),
                q("allergy_to", "Если есть — на какие", Line, false, &[]),
                q(
                    "regular_medicines",
                    "Лекарства, которые вы принимаете постоянно",
                    Text,
                    false,
                    &[],
                ),
                q(
                    "surgeries",
                    "Операции и госпитализации (год, причина)",
                    Text,
                    false,
                    &[],
                ),
                q(
                    "smoking",
                    "Курение",
                    Choice,
                    false,
                    &["Не курю и не курил(а)", "Курю", "Курил(а) раньше"],
                ),
            ],
        },
    }
}

/// What is wrong with a form or with answers: one line per field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Invalid(pub Vec<String>);

fn valid_key(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && id.len() <= 40
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn bounded(s: &str, max: usize) -> bool {
    !s.trim().is_empty() && s.chars().count() <= max
}

/// Check a form a clinic publishes.
pub fn check_form(form: &FormBody) -> Result<(), Invalid> {
    let mut errors = Vec::new();
    if !bounded(&form.title, 200) {
        errors.push("title: 1 to 200 characters".to_owned());
    }
    if form.questions.is_empty() || form.questions.len() > QUESTIONS_MAX {
        errors.push(format!("questions: 1 to {QUESTIONS_MAX}"));
    }
    let mut seen = HashSet::new();
    for (i, q) in form.questions.iter().enumerate() {
        let at = format!("questions[{i}]");
        if !valid_key(&q.id) {
            errors.push(format!(
                "{at}.id: a-z, digits and _, starting with a letter, up to 40 characters"
            ));
        } else if !seen.insert(q.id.as_str()) {
            errors.push(format!("{at}.id: {} is used twice", q.id));
        }
        if !bounded(&q.label, 300) {
            errors.push(format!("{at}.label: 1 to 300 characters"));
        }
        if q.hint.as_deref().is_some_and(|h| !bounded(h, 300)) {
            errors.push(format!("{at}.hint: 1 to 300 characters"));
        }
        let has_options = matches!(q.kind, QuestionType::Choice | QuestionType::Multi);
        if has_options {
            let distinct: HashSet<&str> = q.options.iter().map(String::as_str).collect();
            if !(2..=20).contains(&q.options.len())
                || distinct.len() != q.options.len()
                || q.options.iter().any(|o| !bounded(o, 200))
            {
                errors.push(format!(
                    "{at}.options: 2 to 20 different options of 1 to 200 characters"
                ));
            }
        } else if !q.options.is_empty() {
            errors.push(format!("{at}.options: only for choice and multi"));
        }
        let numeric = q.kind == QuestionType::Number;
        if !numeric && (q.min.is_some() || q.max.is_some()) {
            errors.push(format!("{at}: min and max are only for number"));
        }
        if let (Some(min), Some(max)) = (q.min, q.max)
            && min > max
        {
            errors.push(format!("{at}: min must not be above max"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errors))
    }
}

fn answered(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

fn check_answer(q: &Question, v: &Value) -> Option<String> {
    let what = match q.kind {
        QuestionType::Text => match v {
            Value::String(s) if s.chars().count() <= TEXT_MAX => return None,
            _ => format!("text of up to {TEXT_MAX} characters"),
        },
        QuestionType::Line => match v {
            Value::String(s) if s.chars().count() <= LINE_MAX && !s.contains('\n') => {
                return None;
            }
            _ => format!("one line of up to {LINE_MAX} characters"),
        },
        QuestionType::Choice => match v {
            Value::String(s) if q.options.contains(s) => return None,
            _ => "one of its options".to_owned(),
        },
        QuestionType::Multi => match v {
            Value::Array(items) => {
                let picked: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                let distinct: HashSet<&str> = picked.iter().copied().collect();
                if picked.len() == items.len()
                    && distinct.len() == picked.len()
                    && picked.iter().all(|p| q.options.iter().any(|o| o == p))
                {
                    return None;
                }
                "a list of its options without repeats".to_owned()
            }
            _ => "a list of its options without repeats".to_owned(),
        },
        QuestionType::YesNo => match v {
            Value::Bool(_) => return None,
            _ => "true or false".to_owned(),
        },
        QuestionType::Number => match v.as_f64() {
            Some(n) if q.min.is_none_or(|m| n >= m) && q.max.is_none_or(|m| n <= m) => {
                return None;
            }
            _ => match (q.min, q.max) {
                (Some(a), Some(b)) => format!("a number from {a} to {b}"),
                (Some(a), None) => format!("a number of at least {a}"),
                (None, Some(b)) => format!("a number of at most {b}"),
                (None, None) => "a number".to_owned(),
            },
        },
        QuestionType::Date => match v {
            Value::String(s) if s.len() == 10 && s.parse::<jiff::civil::Date>().is_ok() => {
                return None;
            }
            _ => "a date, YYYY-MM-DD".to_owned(),
        },
    };
    Some(format!("answers.{}: must be {what}", q.id))
}

/// Check `answers` (an object keyed by question id) against `questions`; a submitted
/// questionnaire (`complete`) answers every required question. Returns the answers kept:
/// unanswered ones (null, empty text or list) dropped, texts trimmed.
pub fn check_answers(
    questions: &[Question],
    answers: &Value,
    complete: bool,
) -> Result<Map<String, Value>, Invalid> {
    let Some(given) = answers.as_object() else {
        return Err(Invalid(vec![
            "answers: must be an object keyed by question id".to_owned(),
        ]));
    };
    let mut errors = Vec::new();
    for key in given.keys() {
        if !questions.iter().any(|q| &q.id == key) {
            errors.push(format!("answers.{key}: the form has no such question"));
        }
    }
    let mut kept = Map::new();
    for q in questions {
        match given.get(&q.id).filter(|v| answered(v)) {
            Some(v) => match check_answer(q, v) {
                Some(e) => errors.push(e),
                None => {
                    let v = match v {
                        Value::String(s) => Value::String(s.trim().to_owned()),
                        other => other.clone(),
                    };
                    kept.insert(q.id.clone(), v);
                }
            },
            None if complete && q.required => {
                errors.push(format!("answers.{}: an answer is required", q.id));
            }
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(kept)
    } else {
        Err(Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_builtin_forms_are_valid() {
        for kind in Kind::ALL {
            check_form(&builtin(kind)).unwrap();
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn answers_are_checked_against_their_questions() {
        let form = builtin(Kind::Symptoms);
        // A draft may leave required questions out; a submission may not.
        let draft = json!({"complaints": "  Кашель  ", "temperature": null});
        let kept = check_answers(&form.questions, &draft, false).unwrap();
        assert_eq!(Value::Object(kept), json!({"complaints": "Кашель"}));
        let e = check_answers(&form.questions, &draft, true).unwrap_err();
        assert_eq!(e.0, ["answers.since: an answer is required"]);

        let bad = json!({"complaints": 5, "since": "Вчера", "temperature": 50,
                          "extra": "x"});
        let e = check_answers(&form.questions, &bad, false).unwrap_err();
        assert_eq!(
            e.0,
            [
                "answers.extra: the form has no such question",
                "answers.complaints: must be text of up to 4000 characters",
                "answers.since: must be one of its options",
                "answers.temperature: must be a number from 34 to 43",
            ]
        );
        assert!(check_answers(&form.questions, &json!([1]), false).is_err());
        let ok = json!({"complaints": "Кашель", "since": "Сегодня", "temperature": 37.2});
        assert_eq!(check_answers(&form.questions, &ok, true).unwrap().len(), 3);
    }

    #[test]
    fn published_forms_are_checked() {
        let mut form = builtin(Kind::Anamnesis);
        form.questions[1].id = "chronic".into();
        form.questions[2].options = vec!["a".into()];
        form.questions[3].kind = QuestionType::Multi;
        form.questions[3].options = vec!["x".into(), "x".into()];
        form.questions[4].max = Some(1.0);
        let e = check_form(&form).unwrap_err();
        assert_eq!(
            e.0,
            [
                "questions[1].id: chronic is used twice",
                "questions[2].options: only for choice and multi",
                "questions[3].options: 2 to 20 different options of 1 to 200 characters",
                "questions[4]: min and max are only for number",
            ]
        );
        let multi = Question {
            options: vec!["a".into(), "b".into()],
            ..q("m", "M", QuestionType::Multi, true, &[])
        };
        assert!(
            check_answers(
                std::slice::from_ref(&multi),
                &json!({"m": ["a", "b"]}),
                true
            )
            .is_ok()
        );
        assert!(
            check_answers(
                std::slice::from_ref(&multi),
                &json!({"m": ["a", "a"]}),
                true
            )
            .is_err()
        );
        assert!(check_answers(std::slice::from_ref(&multi), &json!({"m": ["c"]}), true).is_err());
    }
}
