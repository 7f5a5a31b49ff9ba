"""People in the loop: a study in the browser where real people answer preference queries.

``robopref study create`` renders candidate clips and writes a study folder with an SQLite
database and one private link per participant (:mod:`robopref.study.create`);
``robopref study serve`` serves the pages (:mod:`robopref.study.app`, FastAPI on uvicorn);
``robopref study export`` turns the answers into a :class:`~robopref.data.dataset.PreferenceDataset`
(:mod:`robopref.study.export`) and ``robopref study report`` summarises them
(:mod:`robopref.study.report`). The layout of a study folder: :mod:`robopref.study.spec`;
the database: :mod:`robopref.study.store`.
"""
