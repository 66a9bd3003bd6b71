"""A data-source plugin: questions about capital cities, two confusable tasks, generated offline.

    acct train --preset tiny --code docs/examples/capitals.py --data-source capitals --output-dir runs/capitals
"""

import random

from acct.data import Example, register_data_source

CAPITALS = {
    "capital_europe": {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
                       "Portugal": "Lisbon", "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens"},
    "capital_asia": {"Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Thailand": "Bangkok",
                     "Vietnam": "Hanoi", "Nepal": "Kathmandu", "Mongolia": "Ulaanbaatar", "Laos": "Vientiane"},
}


@register_data_source("capitals")
class Capitals:
    """Capital cities of Europe and Asia: which city is the capital of a country (offline, generated)."""

    offline = True  # re-reading the data needs no network
    categories = {"capital_europe": "geography", "capital_asia": "geography"}

    def __init__(self, per_task=120):
        # Options come from data.options (a mapping in YAML, ACCT_DATA__OPTIONS as JSON).
        self.per_task = int(per_task)

    def load(self, data, seed):
        # Return the source splits: name -> list of Example. The subject-split protocol pools
        # every split but "auxiliary_train" and cuts each task into train / val / test.
        examples = []
        for task, table in CAPITALS.items():
            rng = random.Random(f"{seed}/{task}")
            cities = sorted(table.values())
            for i in range(self.per_task):
                country = rng.choice(sorted(table))
                wrong = rng.sample([c for c in cities if c != table[country]], 3)
                answer = rng.randrange(4)
                choices = wrong[:answer] + [table[country]] + wrong[answer:]
                examples.append(Example(question=f"What is the capital of {country}?", choices=tuple(choices),
                                        answer=answer, task=task, uid=f"{task}/{i}"))
        return {"all": examples}
