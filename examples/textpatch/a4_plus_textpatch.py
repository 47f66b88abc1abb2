# Table A4 with the textpatch example's rows (raw and with DenseCRF, †), as docs/adding_a_method.md
# describes: `python -m harness run --table examples/textpatch/a4_plus_textpatch.py` makes every
# missing run, `python -m harness table --config examples/textpatch/a4_plus_textpatch.py` renders it.
_base_ = ['A4.py']

rows = _base_.rows + [
    dict(key='textpatch', label='textpatch (example)', method='textpatch'),
    dict(key='textpatch†', label='textpatch (example)†', method='textpatch', setting='tau=0.50+crf'),
]
runs = _base_.runs + [dict(method='textpatch', seeds=[0, 1, 2], taus=[0.5], crf=True, profile='full')]
