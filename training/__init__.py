"""binaura training side: scene synthesis, QA generation, models, recipes, evaluation."""
