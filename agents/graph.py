"""The director's graph: wiring only (the nodes think, in `nodes.py`).

START -> analyze_audio, analyze_images, read_instructions   (the three experts, in parallel)
      -> co_reason (rounds until the stop rule says so)
      -> write_storyline -> direct_negatives -> review_storyline -> plan_segments -> END
"""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from codirector.agents import nodes
from codirector.agents.context import DirectorContext
from codirector.agents.state import DirectorState

__all__ = ["build_director_graph"]


def build_director_graph(checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """Compile the co-reasoning director (KlingAvatar 2.0 sec. 3.2), optionally with a checkpointer."""
    graph = StateGraph(DirectorState, context_schema=DirectorContext)
    graph.add_node("analyze_audio", nodes.analyze_audio_tracks)
    graph.add_node("analyze_images", nodes.analyze_reference_images)
    graph.add_node("read_instructions", nodes.read_user_text)
    graph.add_node("co_reason", nodes.co_reason)
    graph.add_node("write_storyline", nodes.write_shot_storyline)
    graph.add_node("direct_negatives", nodes.direct_negative_prompts)
    graph.add_node("review_storyline", nodes.review_storyline)
    graph.add_node("plan_segments", nodes.plan_render_segments)
    for expert in ("analyze_audio", "analyze_images", "read_instructions"):
        graph.add_edge(START, expert)
    graph.add_edge(["analyze_audio", "analyze_images", "read_instructions"], "co_reason")
    graph.add_conditional_edges("co_reason", nodes.route_after_round)
    graph.add_edge("write_storyline", "direct_negatives")
    graph.add_edge("direct_negatives", "review_storyline")
    graph.add_edge("review_storyline", "plan_segments")
    graph.add_edge("plan_segments", END)
    return graph.compile(checkpointer=checkpointer, name="codirector")
