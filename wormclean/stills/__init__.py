"""Still images: semantic filtering through deep source separation (Javer & Rittscher).

``crops`` cuts annotated objects and background patches out of images (``store`` is the CROPS_DIR layout,
``annotations`` the point/box files, ``colour`` the working space, ``regions`` the Otsu masks and components);
``synthesis`` draws synthetic pairs from them and ``dataset`` streams those pairs to the trainer; ``filtering``
applies a trained model, ``detection`` finds objects in its output and ``evaluate`` scores them.
"""
