"""Still images: what semantic filtering through deep source separation (Javer & Rittscher) needs of its own.

``annotations`` reads and writes the point/box files, ``colour`` is the working space, ``crops`` cuts annotated
objects and background patches out of images and ``store`` is the CROPS_DIR layout they go to. The rest sits with
the video mode: synthetic pairs and their dataset in :mod:`wormclean.data.synthesis` and
:mod:`wormclean.data.crops`, filtering in :mod:`wormclean.predict.filtering`, regions and detection in
:mod:`wormclean.segment.regions` and :mod:`wormclean.segment.detection`, scores in
:mod:`wormclean.segment.metrics`, image files in :mod:`wormclean.io.images`.
"""
