"""What the speaker is doing with their words: speaking intent and valence from the transcript, by rules.

KlingAvatar 2.0 sec. 3.2 lists "speaking intent" among the audio expert's findings. The offline expert has no
language model, so it reads surface cues that hold across speakers: a question mark asks, "hello" greets, "you
should" persuades, "haha" jokes. English is covered broadly and Chinese by its most common markers; a transcript
the rules do not recognize informs, the honest default.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from codirector.schemas.vocab import SpeakingIntent

__all__ = ["classify_intent", "exclaimed_share", "summarize_intent", "text_valence", "track_intent"]

Intent = SpeakingIntent  # a short alias keeps the rule table readable

# Rules in the order they are tried: the first that matches a phrase decides its intent. Laughter and emotional
# support are the most specific cues; a question mark outranks an imperative ("So tell me, what is ...?").
_RULES: tuple[tuple[SpeakingIntent, re.Pattern[str]], ...] = tuple(
    (intent, re.compile(pattern, re.IGNORECASE))
    for intent, pattern in (
        (Intent.JOKE, r"\b(ha){2,}|\bhehe|\blol\b|[(\[]laugh|\bjust kidding\b|\bjoking\b|哈哈|呵呵|开玩笑"),
        (
            Intent.COMFORT,
            r"\b(don'?t|do not) (worry|be afraid|be sad)|\bit'?s (going to be )?(ok|okay|alright|all right)\b"
            r"|\bit will be (ok|okay|fine|alright)\b|\byou'?re not alone\b|\bi'?m here for you\b"
            r"|\beverything will be\b|别担心|没关系|会好的|别怕|没事的",
        ),
        (
            Intent.COMPLAIN,
            r"\bi (hate|can'?t stand)\b|\b(so |really )?annoying\b|\bridiculous\b|\bunfair\b|\bfed up\b|\bsick of\b"
            r"|\bunacceptable\b|\bfrustrat\w*|\bwhy (does|do|is|are) \w+ always\b|讨厌|受不了|太烦|气死",
        ),
        (
            Intent.GREET,
            r"^\W*(hi|hello|hey|howdy|greetings|good (morning|afternoon|evening)|welcome)\b|\bwelcome (back|to)\b"
            r"|\bnice to (meet|see)\b|\bthanks? (you )?for (having|watching|listening|coming|joining)\b"
            r"|^\W*(thank you|thanks)( (so|very) much)?( everyone| all)?\W*$|\b(goodbye|bye-bye|see you)\b"
            r"|\bmy name is\b|\b(glad|happy|great|nice) (that )?you('re| are)? ?"
            r"(here|came|could make it|stopped by|joined)"
            r"|^\W*(你好|您好|大家好|欢迎|早上好|晚上好|谢谢|再见)|我叫|我是",
        ),
        (Intent.INSTRUCT, r"\bplease\b|^\W*请"),
        (
            Intent.ASK,
            r"[?？]\W*$|^\W*(what|why|how|when|where|who|which|whose|is|are|do|does|did|can|could|would|shall)\b"
            r"|吗\W*$|呢\W*$|^\W*(为什么|怎么|什么|哪)",
        ),
        (
            Intent.PERSUADE,
            r"\byou (should|must|need to|have to|ought to)\b|\byou'?ve got to\b|\blet'?s\b|\bdon'?t miss\b"
            r"|\bnever give up\b|\bwhy not\b|\bjoin us\b|\bsign up\b|\bsubscribe\b|\btrust me\b|\bi urge\b"
            r"|\bstart today\b|\bif you [^.!?]{0,60}, (start|try|go|come|join|do|don'?t)\b"
            r"|让我们|我们一起|一定要|千万|赶快|快来",
        ),
        (
            Intent.INSTRUCT,
            r"^\W*((now|so|then|first|next|okay|ok|and)\W+)?(add|bring|click|close|come|cut|follow|give|go|hold"
            r"|keep|listen|look|mix|move|open|pick|place|pour|press|put|read|remember|repeat|select|set|sit|stand"
            r"|stay|step|stop|take|tell|try|turn|type|use|wait|wash|watch|write)\b|\bstep (one|two|\d)\b"
            r"|^\W*(首先|然后|接下来)|跟着",
        ),
        (
            Intent.NARRATE,
            r"\b(i|we) (still )?(remember|recall)\b|\bonce upon\b|\bwhen i was\b|\byears ago\b|\byesterday\b"
            r"|\blast (year|week|night|summer|time)\b|\bthen came\b|\b(i|we|he|she|they) (\w+ed|was|were|had|came"
            r"|went|saw|got|took|felt|made|told|said|thought|knew|left|ran|began)\b[^.!?]*\b(\w+ed|saw|went|came)\b"
            r"|那天|记得|曾经|以前|从前",
        ),
    )
)
# "I'm Eileen": case matters here, a capitalized name after "I'm" (not "I'm going").
_SELF_INTRODUCTION = re.compile(r"^\W*((and|so|well|hi|hello)\W+)?(I'm|I am|I’m) [A-Z][a-z]+\b")
# Priority when two intents are equally frequent over a track: the rarer, more specific one wins.
_PRIORITY = (
    Intent.PERFORM,
    Intent.JOKE,
    Intent.COMPLAIN,
    Intent.COMFORT,
    Intent.PERSUADE,
    Intent.INSTRUCT,
    Intent.ASK,
    Intent.GREET,
    Intent.NARRATE,
    Intent.INFORM,
)
_INFORM_WEIGHT = 0.5  # the default counts for less: it is also what every unrecognized fragment gets

_VERB_PHRASES = {
    Intent.INFORM: "explains",
    Intent.NARRATE: "tells a story",
    Intent.PERSUADE: "urges the listener to act",
    Intent.INSTRUCT: "gives instructions",
    Intent.ASK: "asks a question",
    Intent.GREET: "greets the listener",
    Intent.JOKE: "jokes",
    Intent.COMPLAIN: "complains",
    Intent.COMFORT: "reassures the listener",
    Intent.PERFORM: "sings",
}

_POSITIVE = re.compile(
    r"\b(love[ds]?|lovely|wonderful|great|glad|happy|fun|thanks?|thank you|welcome|amazing|awesome|beautiful"
    r"|excellent|fantastic|enjoy\w*|dream|excited|exciting|proud|best|nice|delighted|joy\w*|smile|laugh\w*|worth"
    r"|bright|perfect|brilliant|incredible|hope|sweet|kind|cheerful|congratulations|lullaby|curious|friends?)\b"
    r"|美丽|漂亮|喜欢|爱|谢谢|开心|高兴|快乐|棒|幸福|欢迎|精彩",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"\b(sorry|sad|terrible|hate[ds]?|awful|bad|worst|angry|afraid|scared|fear|cry|crying|lonely|pain\w*|hurts?"
    r"|lost|exhaust\w*|tired|wrong|problem|difficult|unfortunately|disappoint\w*|annoying|horrible|die[ds]?|dead"
    r"|death|sick|worr\w*|upset|fail\w*|miserable|awful|afraid|emergenc\w*)\b"
    r"|难过|伤心|对不起|讨厌|糟糕|生气|害怕|痛|哭|失望|可怕",
    re.IGNORECASE,
)
_NEGATION = re.compile(r"\b(not|never|no|don'?t|doesn'?t|didn'?t|isn'?t|wasn'?t|can'?t|won'?t)\W+(\w+\W+)?$", re.I)
_EXCLAIMED = re.compile(r"[!！]\W*$")
_WORD = re.compile(r"[A-Za-z']{5,}")
# Function words that say nothing about a topic (five letters or more: shorter words are never topics).
# fmt: off
_STOPWORDS = frozenset((
    "about", "above", "after", "again", "against", "almost", "along", "already", "also", "although", "always",
    "among", "another", "anyone", "anything", "around", "because", "before", "being", "below", "between", "could",
    "didn't", "doesn't", "during", "either", "every", "everyone", "everything", "going", "having", "here's",
    "however", "itself", "just", "let's", "might", "mostly", "never", "other", "others", "ourselves", "really",
    "right", "should", "since", "something", "sometimes", "still", "that's", "their", "theirs", "them", "then",
    "there", "there's", "these", "they", "thing", "things", "think", "those", "though", "through", "today", "until",
    "very", "wasn't", "what", "what's", "when", "where", "whether", "which", "while", "whole", "would", "you're",
    "yourself",
))
# fmt: on


def classify_intent(text: str) -> SpeakingIntent:
    """The intent of one phrase: the first rule that matches, else inform.

    Example:
        >>> classify_intent("So tell me, what's the hardest part?")
        <SpeakingIntent.ASK: 'ask'>
    """
    if _SELF_INTRODUCTION.search(text):
        return Intent.GREET
    for intent, pattern in _RULES:
        if pattern.search(text):
            return intent
    return Intent.INFORM


def track_intent(phrase_intents: Sequence[SpeakingIntent], *, sung: bool = False) -> SpeakingIntent:
    """The track's intent: the most frequent phrase intent, the default counting for less; singing performs."""
    if sung:
        return Intent.PERFORM
    if not phrase_intents:
        return Intent.INFORM
    weights: Counter[SpeakingIntent] = Counter()
    for intent in phrase_intents:
        weights[intent] += _INFORM_WEIGHT if intent is Intent.INFORM else 1.0
    best = max(weights.values())
    return next(intent for intent in _PRIORITY if weights.get(intent, 0.0) == best)


def summarize_intent(phrases: Sequence[str], phrase_intents: Sequence[SpeakingIntent], *, sung: bool = False) -> str:
    """One sentence on what the speaker does, in the order they do it, with the topic or the opening words.

    Example:
        >>> summarize_intent(["Hello there!", "Stay curious."], [SpeakingIntent.GREET, SpeakingIntent.PERSUADE])
        'Greets the listener, then urges the listener to act, opening with “Hello there”.'
    """
    if not phrases:
        return "Sings without recognizable words." if sung else "Says no recognizable words."
    steps: list[str] = []
    for intent in [Intent.PERFORM] if sung else phrase_intents:
        verb = _VERB_PHRASES[intent]
        if intent is Intent.ASK and sum(i is Intent.ASK for i in phrase_intents) > 1:
            verb = "asks questions"
        if verb not in steps:
            steps.append(verb)
    steps = steps[:4]
    sentence = steps[0] if len(steps) == 1 else ", ".join(steps[:-1]) + ", then " + steps[-1]
    topics = _topics(" ".join(phrases))
    if topics:
        tail = (
            f", mostly about {', '.join(topics[:-1])} and {topics[-1]}" if len(topics) > 1 else f", about {topics[0]}"
        )
    else:
        opening = phrases[0].rstrip(" .,;:!?。，！？") if len(phrases[0]) <= 60 else phrases[0][:57].rstrip() + "…"
        tail = f", opening with “{opening}”"
    return sentence[0].upper() + sentence[1:] + tail + "."


def _topics(text: str, limit: int = 3) -> list[str]:
    """Content words said at least twice, most frequent first: a cheap topic line for long talks."""
    counts = Counter(word.lower() for word in _WORD.findall(text) if word.lower() not in _STOPWORDS)
    return [word for word, count in counts.most_common(limit) if count >= 2]


def text_valence(text: str) -> tuple[float, int]:
    """Valence of a transcript from a small word list, -1 (negative) to 1 (positive), and the number of cues found.

    A negation within two words before a cue flips it ("don't worry" is reassuring). The (positive - negative) /
    (positive + negative + 2) form keeps a single word from claiming certainty; nothing found is 0.
    """
    positive = negative = 0
    for pattern, sign in ((_POSITIVE, 1), (_NEGATIVE, -1)):
        for match in pattern.finditer(text):
            negated = bool(_NEGATION.search(text[max(0, match.start() - 20) : match.start()]))
            if (sign > 0) != negated:
                positive += 1
            else:
                negative += 1
    return (positive - negative) / (positive + negative + 2), positive + negative


def exclaimed_share(phrases: Sequence[str]) -> float:
    """Share of phrases that end with an exclamation mark (Whisper writes one for an exclaimed phrase)."""
    if not phrases:
        return 0.0
    return sum(bool(_EXCLAIMED.search(phrase)) for phrase in phrases) / len(phrases)
