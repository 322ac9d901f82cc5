from setuptools import find_packages, setup

package_name = 'v2x_bridge'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='V2X Alerts Maintainers',
    maintainer_email='maintainers@v2x-alerts.dev',
    description='The alert gateway node and the seed-compatible CLI tools.',
    license='AGPL-3.0-only',
    entry_points={
        'console_scripts': [
            'alert_gateway = v2x_bridge.alert_gateway:main',
            'v2x_inject = v2x_bridge.v2x_inject:main',
            'v2x_alert_server = v2x_bridge.v2x_alert_server:main',
            'v2x_alert_client = v2x_bridge.v2x_alert_client:main',
            'v2x_keygen = v2x_bridge.v2x_keygen:main',
        ],
    },
)
